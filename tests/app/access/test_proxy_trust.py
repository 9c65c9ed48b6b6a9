"""Forwarded headers are honoured only with CAREFILE_TRUST_PROXY (issue 8, item 9)."""
from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from app.cli import forwarded_ips
from tests.app.conftest import PASSWORD

FORM_LIST = "/v1/projects/1/formList"
BASIC = {"X-OpenRosa-Version": "1.0",
         "Authorization": "Basic " + base64.b64encode(f"tashi:{PASSWORD}".encode()).decode()}


@pytest.fixture
def plain_socket() -> Iterator[socket.socket]:
    sock = socket.socket()
    yield sock
    sock.close()


def test_gunicorn_scheme_from_a_forwarded_header_is_not_believed(app: Any, collector: Any,
                                                                 plain_socket: socket.socket) -> None:
    # What gunicorn hands the app when 127.0.0.1 sends X-Forwarded-Proto: https with its default
    # forwarded_allow_ips: url_scheme https on a plain TCP socket.
    resp = app.test_client().get(FORM_LIST, headers={**BASIC, "X-Forwarded-Proto": "https"},
                                 base_url="https://localhost", environ_overrides={"gunicorn.socket": plain_socket})
    assert resp.status_code == 401
    assert b"HTTPS" in resp.data


def test_gunicorn_tls_socket_is_https(app: Any, collector: Any, plain_socket: socket.socket) -> None:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).wrap_socket(plain_socket, server_hostname="localhost",
                                                              do_handshake_on_connect=False)
    with tls:
        resp = app.test_client().get(FORM_LIST, headers=BASIC, base_url="https://localhost",
                                     environ_overrides={"gunicorn.socket": tls})
    assert resp.status_code == 200


def test_trusted_proxy_header_is_believed(app_config: dict[str, Any], app: Any, collector: Any,
                                          plain_socket: socket.socket) -> None:
    from app import create_app

    behind_proxy = create_app({**app_config, "TRUST_PROXY": True})
    try:
        resp = behind_proxy.test_client().get(FORM_LIST, headers={**BASIC, "X-Forwarded-Proto": "https"},
                                              environ_overrides={"gunicorn.socket": plain_socket})
        assert resp.status_code == 200
    finally:
        behind_proxy.extensions["carefile"].db.dispose()


def test_serve_lets_gunicorn_trust_forwarded_headers_only_with_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert forwarded_ips({"TRUST_PROXY": False}) == ""
    assert forwarded_ips({"TRUST_PROXY": True}) == "127.0.0.1,::1"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.2")
    assert forwarded_ips({"TRUST_PROXY": True}) == "10.0.0.2"
    assert forwarded_ips({"TRUST_PROXY": False}) == ""


@pytest.mark.parametrize("trust, expected", [("false", []), ("true", ["127.0.0.1", "::1"])])
def test_carefile_serve_configures_gunicorn(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, trust: str,
                                            expected: list[str]) -> None:
    from gunicorn.app.base import BaseApplication

    from app import cli

    seen: dict[str, Any] = {}

    def run(self: Any) -> None:  # instead of starting the server: what would gunicorn be told?
        seen["forwarded_allow_ips"] = self.cfg.forwarded_allow_ips
        seen["bind"] = self.cfg.bind

    monkeypatch.setattr(BaseApplication, "run", run)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    for key, value in {"DATA_DIR": str(tmp_path / "data"), "XLSFORMS_DIR": str(tmp_path / "none"),
                       "TRUST_PROXY": trust, "ODK_VALIDATE": "off", "SECRET_KEY": "x"}.items():
        monkeypatch.setenv(f"CAREFILE_{key}", value)
    monkeypatch.delenv("CAREFILE_DATABASE_URL", raising=False)
    assert cli.main(["serve", "--port", "8765"]) == 0
    assert seen == {"forwarded_allow_ips": expected, "bind": ["127.0.0.1:8765"]}
