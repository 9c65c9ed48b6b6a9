"""Vendor ODK Web Forms (@getodk/web-forms) and Vue's browser build into app/static/vendor/.

    python scripts/vendor_webforms.py          # download (npm pack), check integrity, unpack
    python scripts/vendor_webforms.py --check  # exit 1 unless the vendored files are present and intact

The vendored files are committed to the repository and installed with the package (pyproject's
package-data), so `pip install` gives a server whose fill, try and edit pages work without network
access. Run this script only to change a pin (then commit app/static/vendor/) or to restore the files.

Exact versions are pinned with the registry's sha512 integrity; a tarball that does not match is
refused. MANIFEST.json records the pins and the sha256 of every vendored file (tests/app/
test_vendored_webforms.py checks them). Licences: Vue's LICENSE comes from its tarball; the Web Forms
tarball has no licence file, only `"license": "Apache-2.0"` in its package.json, so the Apache-2.0
text is taken from scripts/licenses/, and NOTICE lists what its bundle contains.
The pages then load everything from this server: no CDN, no request leaves the host.
Maps are off: Web Forms loads its map block (OpenLayers, with OpenStreetMap tiles) as a separate
chunk on demand; that chunk is not vendored, so a map question shows Web Forms' "map unavailable"
state instead of fetching tiles from openstreetmap.org.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "app" / "static" / "vendor"
MANIFEST = VENDOR / "MANIFEST.json"

# name, version, npm integrity (sha512), files to take (path in the tarball → path under VENDOR)
PINS: list[tuple[str, str, str, dict[str, str]]] = [
    ("@getodk/web-forms", "0.22.0",
     "sha512-vG4ZWWqIUNNXVab8qdLtPouxv8fOjJNIloWcWbTn8hSeID9f2tBeSHV89Avptw+BRyj2YDFmrFrKDYNwErD5Jg==",
     {"package/dist/": "web-forms/",  # except SKIP
      "package/package.json": "web-forms/package.json"}),  # its "license" field
    ("vue", "3.5.45",
     "sha512-3cvsib8m9c0vB24+MDKsgcW4+Da4xaBl9Z/5Tbm2pmSIsRPxcil4cdXjXlVsmJ2g64XJo5h+IRd7rsdGT9pZaw==",
     {"package/dist/vue.runtime.esm-browser.prod.js": "vue/vue.runtime.esm-browser.prod.js",
      "package/LICENSE": "vue/LICENSE"}),
]
LICENCES = Path(__file__).resolve().parent / "licenses"
# Files written besides the tarballs' own: path under VENDOR → text
NOTICE = """ODK Web Forms @getodk/web-forms 0.22.0 (https://github.com/getodk/web-forms)
Copyright getodk. Licensed under the Apache License, Version 2.0 (web-forms/LICENSE);
the npm package carries no licence file, its package.json says "license": "Apache-2.0".

web-forms/index.js and web-forms/index-*.js are the package's published build. According to the
package's package.json the build bundles, among others: @getodk/xforms-engine and @getodk/xpath
(Apache-2.0, ODK), primevue and @primeuix/themes (MIT), dompurify (MPL-2.0 OR Apache-2.0),
image-blob-reduce and pica (MIT), vue-draggable-plus (MIT), @mdi/js (Apache-2.0). The map chunk
(MapBlock-*.js, with OpenLayers, BSD-2-Clause) is not vendored: maps are off.

Vue 3.5.45 (vue/vue.runtime.esm-browser.prod.js), MIT licence: vue/LICENSE.

Vendored by scripts/vendor_webforms.py from the npm registry; integrity pinned there.
"""
EXTRA = {"web-forms/LICENSE": (LICENCES / "Apache-2.0.txt"), "NOTICE": NOTICE}


SKIP = ("package/dist/MapBlock-",)  # the map chunk: it would fetch OpenStreetMap tiles


def _integrity_ok(data: bytes, integrity: str) -> bool:
    algo, _, expected = integrity.partition("-")
    return algo == "sha512" and base64.b64encode(hashlib.sha512(data).digest()).decode() == expected


def _pack(name: str, version: str, workdir: Path) -> bytes:
    out = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent", "--pack-destination", str(workdir)],
                         check=True, capture_output=True, text=True, cwd=workdir)
    return (workdir / out.stdout.strip().splitlines()[-1]).read_bytes()


def vendor() -> dict[str, str]:
    files: dict[str, str] = {}
    staging = Path(tempfile.mkdtemp(prefix="vendor-"))
    try:
        for name, version, integrity, wanted in PINS:
            data = _pack(name, version, staging)
            if not _integrity_ok(data, integrity):
                raise SystemExit(f"{name}@{version}: the tarball does not match the pinned integrity; refusing it")
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                for member in tar.getmembers():
                    if not member.isfile() or member.name.startswith(SKIP):
                        continue
                    for src, dst in wanted.items():
                        if member.name == src or (src.endswith("/") and member.name.startswith(src)):
                            rel = dst + member.name[len(src):] if src.endswith("/") else dst
                            if ".." in Path(rel).parts:
                                raise SystemExit(f"{name}: unsafe path {member.name}")
                            extracted = tar.extractfile(member)
                            assert extracted is not None
                            target = staging / "out" / rel
                            target.parent.mkdir(parents=True, exist_ok=True)
                            target.write_bytes(extracted.read())
        for rel, source in EXTRA.items():
            target = staging / "out" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes() if isinstance(source, Path) else source.encode())
        if VENDOR.exists():
            shutil.rmtree(VENDOR)
        shutil.copytree(staging / "out", VENDOR)
        for path in sorted(VENDOR.rglob("*")):
            if path.is_file():
                files[path.relative_to(VENDOR).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
        MANIFEST.write_text(json.dumps({"pins": {n: v for n, v, _, _ in PINS}, "sha256": files}, indent=1) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files


def check() -> list[str]:
    """Problems with the vendored files (empty: present and unchanged since vendoring)."""
    if not MANIFEST.exists():
        return ["not vendored: run python scripts/vendor_webforms.py"]
    manifest = json.loads(MANIFEST.read_text())
    if manifest.get("pins") != {n: v for n, v, _, _ in PINS}:
        return ["vendored versions differ from the pins: run python scripts/vendor_webforms.py"]
    problems = [f"{p.name}: not to be vendored (maps are off)" for p in VENDOR.rglob("MapBlock-*")]
    for rel, digest in manifest["sha256"].items():
        path = VENDOR / rel
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{rel}: missing or changed")
    listed = set(manifest["sha256"]) | {MANIFEST.name}
    problems += [f"{rel}: not in MANIFEST.json" for rel in sorted(
        p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()) if rel not in listed]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    files = vendor()
    print(f"vendored {len(files)} files into {VENDOR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
