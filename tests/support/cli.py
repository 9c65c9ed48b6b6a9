"""Run the `carefile` command in-process against a test's database and blob store."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def cli_runner(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """A function running `carefile ARGS...` that returns (exit code, stdout, stderr).

    The command reads its settings from CAREFILE_* variables, as it does on a server; they
    point at the same data folder, database and blob store as the test's app.
    """
    from app.cli import main

    for key in ("DATA_DIR", "DATABASE_URL", "STORAGE_URL", "SECRET_KEY", "XLSFORMS_DIR"):
        monkeypatch.setenv(f"CAREFILE_{key}", str(app_config[key]))
    monkeypatch.setenv("CAREFILE_ODK_VALIDATE", "off")
    monkeypatch.delenv("CAREFILE_PUBLIC_URL", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run
