"""A live server (issue 8, items 7 and 9): `carefile serve` and a hand-started `gunicorn wsgi:app`
ignore X-Forwarded-Proto from 127.0.0.1 without CAREFILE_TRUST_PROXY, and the sign-in throttle holds
across gunicorn workers (its state is in the database)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from tests.e2e.live import CAREFILE, REPO, LiveServer, LiveServerError

PASSWORD = "correct horse battery"
OR = {"X-OpenRosa-Version": "1.0"}


@contextlib.contextmanager
def carefile_serve(srv: LiveServer, workers: int = 2) -> Iterator[str]:
    """`carefile serve` on the server's port (its own process group), until the block ends."""
    with open(srv.root / "serve.log", "ab") as log:
        proc = subprocess.Popen([str(CAREFILE), "serve", "--host", "127.0.0.1", "--port", str(srv.port),
                                 "--workers", str(workers), "--threads", "2"], cwd=REPO, env=srv.env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise LiveServerError((srv.root / "serve.log").read_text(errors="replace")[-3000:])
            try:
                if requests.get(f"{srv.url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise LiveServerError("carefile serve did not answer /healthz within 60 s")
            time.sleep(0.1)
        yield srv.url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGQUIT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _basic_with_forwarded_https(url: str) -> requests.Response:
    return requests.get(f"{url}/v1/projects/1/formList", auth=("analyst", PASSWORD),
                        headers={**OR, "X-Forwarded-Proto": "https"}, timeout=10)


def test_forwarded_proto_needs_trust_proxy_and_the_throttle_spans_workers(tmp_path: Path) -> None:
    # SQLite only: the throttle's queries run on both backends in tests/app/identity/test_signin_throttle.py;
    # here what matters is gunicorn's configuration and several worker processes.
    srv = LiveServer.prepare(tmp_path / "srv")
    srv.cli("init")
    srv.cli_parallel(["user", "add", "analyst", "--role", "manager", "--region", "540102", "--password", PASSWORD],
                     ["user", "add", "pema", "--role", "manager", "--region", "540102", "--password", PASSWORD])
    with carefile_serve(srv) as url:
        resp = _basic_with_forwarded_https(url)
        assert resp.status_code == 401 and "HTTPS" in resp.text  # Basic over plain http: refused
        # The throttle is shared by both workers: five wrong passwords, then a wait at this
        # address, whichever worker answers; the right password is refused too.
        statuses = [requests.post(f"{url}/v1/sessions", json={"email": "pema", "password": f"guess {i}"},
                                  timeout=10).status_code for i in range(8)]
        assert statuses == [401] * 5 + [429] * 3
        resp = requests.post(f"{url}/v1/sessions", json={"email": "pema", "password": PASSWORD}, timeout=10)
        assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    # gunicorn started by hand (its default trusts forwarded headers from 127.0.0.1): still refused
    srv.start()
    try:
        assert _basic_with_forwarded_https(srv.url).status_code == 401
    finally:
        srv.stop()
    # Behind a proxy on this host, with the setting: the proxy's header is believed.
    srv.env["CAREFILE_TRUST_PROXY"] = "true"
    srv.start()
    try:
        assert _basic_with_forwarded_https(srv.url).status_code == 200
        plain = requests.get(f"{srv.url}/v1/projects/1/formList", auth=("analyst", PASSWORD), headers=OR,
                             timeout=10)
        assert plain.status_code == 401  # no header from the proxy: plain http
    finally:
        srv.stop()
