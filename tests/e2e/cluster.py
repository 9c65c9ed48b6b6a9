"""Several `carefile serve` nodes on one PostgreSQL and one SeaweedFS, for tests/e2e/test_multinode.py and
tests/e2e/test_faults.py. This module deliberately does not import pytest.

    s3 = start_seaweedfs(root / "s3")
    nodes = [Node.prepare(root / name, cluster_settings(db_url, s3)) for name in ("a", "b")]
    start_together(nodes)          # `carefile serve` on each, launched at the same instant
    ... requests against nodes[0].url / nodes[1].url ...
    node.kill()                    # kill -9 of the node's whole process group (master and workers)
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from tests.e2e.live import CAREFILE, REPO, LiveServer

PASSWORD = "correct horse battery"
OR = {"X-OpenRosa-Version": "1.0"}
SHARED_SECRET = "multinode-shared-secret-0123456789abcdef"


def cluster_settings(database_url: str, s3: Any | None, prefix: str = "multinode") -> dict[str, str]:
    """What every node of one deployment shares: database, blob store, secret key."""
    settings = {
        "CAREFILE_DATABASE_URL": database_url,
        "CAREFILE_SECRET_KEY": SHARED_SECRET,  # README: the same on every host
        "CAREFILE_EXPORT_WORKER": "true",  # the environment carries PYTEST_CURRENT_TEST; run jobs anyway
    }
    if s3 is not None:
        settings.update({
            "CAREFILE_STORAGE_URL": f"s3://{s3.bucket}/{prefix}",
            "CAREFILE_S3_ENDPOINT_URL": s3.endpoint_url,
            "CAREFILE_S3_REGION": s3.region,
            "CAREFILE_S3_ACCESS_KEY": s3.access_key,
            "CAREFILE_S3_SECRET_KEY": s3.secret_key,
        })
    return settings


class Node(LiveServer):
    """A LiveServer run as an operator runs a node: `carefile serve` (2 sync workers), which migrates first."""

    def _launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(CAREFILE), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                 str(self.workers), "--threads", "1"],
                cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pids(self) -> set[int]:
        """The node's processes (gunicorn master and workers: its process group)."""
        if self.proc is None:
            return set()
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                if int(fields[2]) == self.proc.pid:  # pgrp
                    found.add(int(entry.name))
        return found

    def kill(self) -> None:
        """kill -9 of master and workers at once: nothing gets to clean up."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def warm(self, times: int = 6) -> None:
        """A few requests, so each gunicorn worker has started its export worker thread."""
        for _ in range(times):
            requests.get(f"{self.url}/readyz", timeout=10)


def start_together(nodes: list[Node], timeout: float = 60) -> None:
    """Launch every node at the same instant (each migrates on start), then wait for all of them."""
    for node in nodes:
        node._launch()
    for node in nodes:
        node._wait_ready(timeout)


def api_token(url: str, user: str, password: str = PASSWORD) -> str:
    resp = requests.post(f"{url}/v1/sessions", json={"email": user, "password": password}, timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


def csrf_token(page: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None, page[:500]
    return token.group(1)


def web_login(url: str, user: str, password: str = PASSWORD) -> str:
    """Sign in on the website of one node; the session cookie."""
    http = requests.Session()
    token = csrf_token(http.get(f"{url}/login", timeout=10).text)
    resp = http.post(f"{url}/login", data={"username": user, "password": password, "csrf_token": token},
                     allow_redirects=False, timeout=10)
    assert resp.status_code in (302, 303), resp.text[:500]
    return str(http.cookies["carefile_session"])


def wait_for(check: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
