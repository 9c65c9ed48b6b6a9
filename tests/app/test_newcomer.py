"""Newcomer polish: quiet CLI commands, shell-safe collector tokens (old ones still work)."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CAREFILE = Path(sys.executable).parent / "carefile"


def test_cli_commands_print_no_alembic_lines(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREFILE_")}
    env.update(CAREFILE_DATA_DIR=str(tmp_path / "data"), CAREFILE_XLSFORMS_DIR=str(tmp_path / "none"),
               CAREFILE_ODK_VALIDATE="off")

    def run(*args: str) -> str:
        proc = subprocess.run([str(CAREFILE), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=120, check=True)
        return proc.stdout + proc.stderr

    proc = subprocess.run([str(CAREFILE), "form", "list"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1 and "run `carefile init` first" in proc.stderr and "Traceback" not in proc.stderr
    run("init")
    run("user", "add", "dolma", "--role", "collector", "--password", "a long password", "--region", "540102")
    for out in (run("form", "list"), run("user", "token", "dolma", "--public-url", "http://192.0.2.5:8000")):
        assert "alembic" not in out and " INFO " not in out, out
    url = re.search(r"http://192\.0\.2\.5:8000/v1/key/(\S+)/projects/1", out)
    assert url is not None and re.fullmatch(r"[A-Za-z0-9_-]{64}", url.group(1)), out


def test_new_tokens_are_url_and_shell_safe_and_old_ones_still_work(app: Any, rt: Any, collector: Any,
                                                                  household: Any) -> None:
    from app.models import CollectorToken
    from app.services.identity import users

    tokens = {users.new_token_value() for _ in range(200)}
    assert len(tokens) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{64}", t) for t in tokens)
    old = "Ab!$" * 16  # issued before: `!` and `$` were in the alphabet
    with rt.db.write() as s:  # stored as its digest, as every token is (identity/tokens.py)
        s.add(CollectorToken(user_id=collector.id, token_hash=hashlib.sha256(old.encode()).hexdigest()))
    resp = app.test_client().get(f"/v1/key/{old}/projects/1/formList", headers={"X-OpenRosa-Version": "1.0"})
    assert resp.status_code == 200 and b"household" in resp.data
