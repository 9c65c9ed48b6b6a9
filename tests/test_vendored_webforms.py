"""The ODK Web Forms renderer and Vue ship with CareFile (app/static/vendor/, committed): every file
matches MANIFEST.json (written by scripts/vendor_webforms.py from the pinned, integrity-checked npm
tarballs), the licences are there, and an installed wheel contains all of it."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "app" / "static" / "vendor"


def _script():  # scripts/ is not a package
    spec = importlib.util.spec_from_file_location("vendor_webforms", ROOT / "scripts" / "vendor_webforms.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _manifest() -> dict:
    return json.loads((VENDOR / "MANIFEST.json").read_text())


def test_shipped_files_match_their_manifest_and_the_pins() -> None:
    script = _script()
    assert script.check() == []
    manifest = _manifest()
    assert manifest["pins"] == {"@getodk/web-forms": "0.22.0", "vue": "3.5.45"}
    for rel, digest in manifest["sha256"].items():
        assert hashlib.sha256((VENDOR / rel).read_bytes()).hexdigest() == digest, rel
    # what the pages import is among them; the map chunk (it would fetch map tiles) is not
    assert {"web-forms/index.js", "vue/vue.runtime.esm-browser.prod.js"} <= set(manifest["sha256"])
    assert not any("MapBlock" in rel for rel in manifest["sha256"])


def test_licences_ship_with_the_builds() -> None:
    assert "MIT License" in (VENDOR / "vue" / "LICENSE").read_text()
    assert "Apache License" in (VENDOR / "web-forms" / "LICENSE").read_text()
    assert json.loads((VENDOR / "web-forms" / "package.json").read_text())["license"] == "Apache-2.0"
    assert "@getodk/web-forms 0.22.0" in (VENDOR / "NOTICE").read_text()


def test_check_notices_a_changed_or_extra_file(tmp_path: Path, monkeypatch) -> None:
    import shutil

    script = _script()
    copy = tmp_path / "vendor"
    shutil.copytree(VENDOR, copy)
    monkeypatch.setattr(script, "VENDOR", copy)
    monkeypatch.setattr(script, "MANIFEST", copy / "MANIFEST.json")
    assert script.check() == []
    with open(copy / "vue" / "vue.runtime.esm-browser.prod.js", "ab") as f:
        f.write(b"\n// changed")
    (copy / "web-forms" / "MapBlock-x.js").write_text("")
    problems = script.check()
    assert "vue/vue.runtime.esm-browser.prod.js: missing or changed" in problems
    assert any("MapBlock-x.js" in p for p in problems)


def test_the_files_are_committed() -> None:
    tracked = subprocess.run(["git", "ls-files", "app/static/vendor"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    expected = {f"app/static/vendor/{rel}" for rel in _manifest()["sha256"]} | {"app/static/vendor/MANIFEST.json"}
    assert expected <= set(tracked), sorted(expected - set(tracked))


def test_a_wheel_contains_them(tmp_path: Path) -> None:
    """`pip install carefile` from a wheel (not only `pip install -e .`) gets the renderer."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("carefile-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        expected = {f"app/static/vendor/{rel}" for rel in _manifest()["sha256"]}
        assert expected <= names, sorted(expected - names)
        assert z.read("app/static/vendor/web-forms/index.js") == (VENDOR / "web-forms" / "index.js").read_bytes()
