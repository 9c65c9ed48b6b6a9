"""`carefile user …` (issue 17, item 7): list users, reset a password, deactivate and reactivate, and a
password asked for without a terminal — a clear error, never a traceback."""
from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.cli import cli_runner


@pytest.fixture
def carefile(app_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             app: Any) -> Callable[..., tuple[int, str, str]]:
    return cli_runner(app_config, monkeypatch, capsys)


def sign_in(app: Any, name: str, password: str) -> int:
    resp = app.test_client().post("/v1/sessions", json={"email": name, "password": password})
    return int(resp.status_code)


def test_add_without_a_password_or_a_terminal_says_what_to_do(carefile: Callable[..., tuple[int, str, str]],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = carefile("user", "add", "dolma", "--role", "collector")
    assert code == 1 and "Traceback" not in err
    assert "no terminal" in err and "--password-stdin" in err


def test_add_list_reset_deactivate_activate(app: Any, carefile: Callable[..., tuple[int, str, str]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("first password\n"))
    assert carefile("user", "add", "pema", "--role", "coordinator", "--region", "540102", "--password-stdin")[0] == 0
    assert carefile("user", "add", "root", "--role", "admin", "--password", "root password")[0] == 0
    code, out, _ = carefile("user", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["name", "role", "state", "regions"]
    assert any(line.split()[:4] == ["pema", "coordinator", "active", "540102"] for line in lines)
    assert sign_in(app, "pema", "first password") == 200

    monkeypatch.setattr(sys, "stdin", io.StringIO("second password\n"))
    code, out, _ = carefile("user", "password", "pema", "--password-stdin")
    assert code == 0 and "reset" in out
    assert sign_in(app, "pema", "first password") == 401
    assert sign_in(app, "pema", "second password") == 200

    code, out, _ = carefile("user", "deactivate", "pema")
    assert code == 0 and "deactivated" in out
    assert sign_in(app, "pema", "second password") == 401
    assert any(line.split()[:3] == ["pema", "coordinator", "deactivated"] for line in carefile("user", "list")[1]
               .splitlines())
    assert "already" in carefile("user", "deactivate", "pema")[1]
    assert carefile("user", "activate", "pema")[0] == 0
    assert sign_in(app, "pema", "second password") == 200

    code, _, err = carefile("user", "password", "nobody", "--password-stdin")
    assert code == 1 and "nobody" in err and "Traceback" not in err


def test_a_short_password_is_refused_with_the_reason(carefile: Callable[..., tuple[int, str, str]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    code, _, err = carefile("user", "add", "tashi", "--role", "manager", "--password-stdin")
    assert code == 1 and "at least 8 characters" in err
