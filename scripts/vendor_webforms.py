"""Vendor ODK Web Forms (@getodk/web-forms) and Vue's browser build into app/static/vendor/.

    python scripts/vendor_webforms.py          # download (npm pack), check integrity, unpack
    python scripts/vendor_webforms.py --check  # exit 1 unless the vendored files are present and intact

Exact versions are pinned with the registry's sha512 integrity; a tarball that does not match is
refused. The pages then load everything from this server: no CDN, no request leaves the host.
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
     {"package/dist/": "web-forms/"}),  # except SKIP
    ("vue", "3.5.45",
     "sha512-3cvsib8m9c0vB24+MDKsgcW4+Da4xaBl9Z/5Tbm2pmSIsRPxcil4cdXjXlVsmJ2g64XJo5h+IRd7rsdGT9pZaw==",
     {"package/dist/vue.runtime.esm-browser.prod.js": "vue/vue.runtime.esm-browser.prod.js"}),
]


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
