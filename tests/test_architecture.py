"""The layers of docs/architecture.md: HTTP → Central's shapes → services (floor by floor) → models;
forms/ and storage/ stay framework-free; no import hides inside a function in app/services."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_import_contracts_are_kept() -> None:
    result = subprocess.run([str(BIN / "lint-imports"), str(ROOT / ".importlinter")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "6 kept, 0 broken" in result.stdout


def test_app_passes_ruff() -> None:
    """ruff's rules over app/ (pyproject.toml), among them PLC0415: an import inside a function in
    app/services would hide a cycle from the contracts above, so it fails here."""
    result = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "app"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_a_function_level_import_in_services_is_caught() -> None:
    """The rule is really on for app/services (not only listed): code there with an import inside a
    function fails ruff; the same code in the HTTP layer passes (the CLI and views may defer imports)."""
    probe = '"""probe"""\n\n\ndef f() -> None:\n    import os  # noqa: F401\n'

    def check(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "--stdin-filename", name, "-"], cwd=ROOT,
                              input=probe, capture_output=True, text=True, timeout=120)

    caught = check("app/services/children/probe.py")
    assert caught.returncode == 1 and "PLC0415" in caught.stdout
    assert check("app/web/probe.py").returncode == 0
