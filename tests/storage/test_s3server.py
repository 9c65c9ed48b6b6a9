"""The SeaweedFS helper itself: it starts, answers, and stops its whole process group."""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

from tests.support.s3server import find_weed, start_seaweedfs


def test_find_weed_in_the_environment() -> None:
    path = find_weed()
    assert os.access(path, os.X_OK)


def test_start_and_stop(tmp_path: Path) -> None:
    with start_seaweedfs(tmp_path, bucket="helper-test") as server:
        proc = server.process
        assert proc is not None
        client = server.client()
        client.put_object(Bucket="helper-test", Key="k", Body=b"v")
        assert client.get_object(Bucket="helper-test", Key="k")["Body"].read() == b"v"
        port = urllib.parse.urlsplit(server.endpoint_url).port
        assert port is not None
    assert server.process is None and proc.returncode is not None
    try:
        os.killpg(proc.pid, 0)
        group_alive = True
    except ProcessLookupError:
        group_alive = False
    assert not group_alive
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    server.stop()  # twice is fine
