"""Faults injected into live servers (issue 11 item 4); the answers come from app/faults.py.

- PostgreSQL stopped and started again during a burst of submissions from six phones: every answer is
  201 or a 503 OpenRosaResponse with Retry-After (the API answers JSON, the website a page); the server
  recovers without a restart, phones resend what was not acknowledged, and every acknowledged submission
  is in the database, once.
- S3 (SeaweedFS) stopped: a submission with a photo gets 503 and leaves no row; /readyz says so.
- The blob folder on a full disk (a 1 MB tmpfs): 503 saying the disk is full, no row, no partial file;
  a submission that fits is accepted afterwards.
- The gunicorn worker running an export job killed (kill -9): the job is re-queued and run again.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.auth import HTTPDigestAuth
from sqlalchemy import create_engine, text

from tests.e2e.cluster import OR, PASSWORD, Node, api_token, cluster_settings, wait_for, web_login
from tests.e2e.live import LiveServer

PHOTO_MD = """
| settings |
| | form_id | version |
| | fault_visit | 1 |

| survey |
| | type | name | label |
| | text | note | Note |
| | image | photo | Photo |
"""


def visit_xml(instance: str, note: str = "visit", photo: bool = False) -> bytes:
    pic = "<photo>p.jpg</photo>" if photo else "<photo/>"
    return (f'<data id="fault_visit" version="1"><note>{note}</note>{pic}'
            f"<meta><instanceID>{instance}</instanceID></meta></data>").encode()


def phone_session(url: str) -> requests.Session:
    """Like Collect: the HEAD preflight signs in (Digest), so a large body is sent only once."""
    http = requests.Session()
    http.auth = HTTPDigestAuth("dolma", PASSWORD)
    http.head(f"{url}/v1/projects/1/submission", headers=OR, timeout=30)
    return http


def post(url: str, xml: bytes, photo: bytes | None = None, http: requests.Session | None = None) -> requests.Response:
    parts: list[tuple[str, tuple[str, bytes, str]]] = [("xml_submission_file", ("s.xml", xml, "text/xml"))]
    if photo is not None:
        parts.append(("p.jpg", ("p.jpg", photo, "image/jpeg")))
    sender = http or phone_session(url)
    return sender.post(f"{url}/v1/projects/1/submission", files=parts, headers=OR, timeout=60)


def assert_openrosa_503(resp: requests.Response, *words: str) -> None:
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) > 0
    assert resp.headers["X-OpenRosa-Version"] == "1.0"
    assert "<OpenRosaResponse" in resp.text and 'nature="error"' in resp.text
    for word in words:  # Chinese and English, so Collect shows the village director what happened
        assert word in resp.text, resp.text


def instance_ids(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT instance_id FROM submission")).scalars())


def prepare(node: LiveServer, root: Path) -> None:
    (root / "visit.md").write_text(PHOTO_MD)
    node.cli("init")
    node.cli_parallel(["form", "publish", str(root / "visit.md")],  # independent of each other: at once
                      ["user", "add", "dolma", "--role", "collector", "--password", PASSWORD, "--region", "540102"],
                      ["user", "add", "tsering", "--role", "admin", "--password", PASSWORD])


# ------------------------------------------------------------------------------ PostgreSQL


@dataclass
class PgNode:
    node: Node
    pg: Any
    engine: Any
    opts: str = field(default="")

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(self.pg.runas + [str(self.pg.bindir / "pg_ctl"), "-D", str(self.pg.root / "data"), *args],
                       check=True, capture_output=True, timeout=60)

    def stop_database(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop")  # as if the database machine lost power

    def start_database(self) -> None:
        # the options tests/support/pgserver.py started it with (same port)
        self.pg_ctl("-l", str(self.pg.root / "log"), "-w", "-o",
                    f"-p {self.pg.port} -k {self.pg.root / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off "
                    "-c max_connections=200 -c full_page_writes=off", "start")


@pytest.fixture(scope="module")
def pgnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgNode]:
    """One node (carefile serve, 2 workers) on a PostgreSQL of its own, which the tests stop and start."""
    from tests.support.pgserver import find_bindir, fresh_database, start_postgres

    if find_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found")
    root = tmp_path_factory.mktemp("faults-pg")
    pg = start_postgres()
    url = fresh_database(pg, "carefile_faults")
    node = Node.prepare(root / "node", cluster_settings(url, None))
    engine = create_engine(url, pool_pre_ping=True, pool_size=1)
    try:
        prepare(node, root)
        node.start()
        yield PgNode(node, pg, engine)
    finally:
        node.stop()
        engine.dispose()
        pg.stop()


def test_postgres_restart_during_a_burst_loses_no_acknowledged_submission(pgnode: PgNode) -> None:
    url = pgnode.node.url
    token = api_token(url, "tsering")
    cookie = web_login(url, "tsering")
    acked: set[str] = set()
    unacked: list[str] = []
    refusals: list[requests.Response] = []
    odd: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def phone() -> None:
        http = phone_session(url)
        while not stop.is_set():
            iid = f"uuid:{uuid.uuid4()}"
            try:
                resp = post(url, visit_xml(iid), http=http)
            except requests.RequestException as exc:  # counted as not acknowledged; must not happen
                with lock:
                    odd.append(f"{type(exc).__name__}: {exc}")
                    unacked.append(iid)
                continue
            with lock:
                if resp.status_code == 201:
                    acked.add(iid)
                else:
                    unacked.append(iid)
                    refusals.append(resp)
            if resp.status_code == 503:
                time.sleep(0.1)

    phones = [threading.Thread(target=phone, daemon=True) for _ in range(6)]
    for p in phones:
        p.start()
    try:
        wait_for(lambda: len(acked) >= 10, 30, "the burst to get going")
        pgnode.stop_database()
        time.sleep(2)  # the database is down; phones keep sending
        ready = requests.get(f"{url}/readyz", timeout=10)
        api = requests.get(f"{url}/v1/users/current", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        page = requests.get(f"{url}/", cookies={"carefile_session": cookie}, headers={"Accept-Language": "zh"},
                            allow_redirects=False, timeout=10)
        pgnode.start_database()
        time.sleep(2)  # the server recovers by itself; phones keep sending
    finally:
        stop.set()
        for p in phones:
            p.join(timeout=70)
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "unreachable"
    assert api.status_code == 503 and api.json()["code"] == 503.1 and int(api.headers["Retry-After"]) > 0
    assert page.status_code == 503 and "服务器暂时无法连接数据库" in page.text and int(page.headers["Retry-After"]) > 0
    assert odd == [], odd[:5]
    assert refusals, "no submission reached the server while the database was down"
    for resp in refusals:
        assert_openrosa_503(resp, "数据库", "database")
    # Collect resends what was not acknowledged: each now gets 201
    for iid in unacked:
        assert post(url, visit_xml(iid)).status_code == 201
    stored = instance_ids(pgnode.engine)
    assert acked <= set(stored), sorted(acked - set(stored))[:5]  # every acknowledged submission is there
    assert len(stored) == len(set(stored)) == len(acked | set(unacked))  # and each once
    assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
    assert pgnode.node.proc is not None and pgnode.node.proc.poll() is None  # the same server, not restarted


def _job(engine: Any, job_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, worker, attempts FROM export_job WHERE id = :id"),
                                 {"id": job_id}).mappings().one())


def test_export_worker_killed_mid_job_the_job_runs_again(pgnode: PgNode) -> None:
    node, engine = pgnode.node, pgnode.engine
    for i in range(3):
        assert post(node.url, visit_xml(f"uuid:{uuid.uuid4()}", note=f"export {i}")).status_code == 201
    node.warm()
    token = api_token(node.url, "tsering")
    bearer = {"Authorization": f"Bearer {token}"}
    blocker = engine.connect()
    try:
        blocker.execute(text("LOCK TABLE submission IN ACCESS EXCLUSIVE MODE"))  # holds the job mid-way
        created = requests.post(f"{node.url}/v1/projects/1/exports", json={"form": "fault_visit", "format": "csvzip"},
                                headers=bearer, timeout=20)
        assert created.status_code == 202, created.text
        job_id = int(created.json()["id"])
        running = wait_for(lambda: (j := _job(engine, job_id))["status"] == "running" and j, 20, "the job to start")
        victim = int(running["worker"].split(".")[0])
        assert victim in node.pids() and victim != (node.proc.pid if node.proc else 0)
        os.kill(victim, signal.SIGKILL)  # one gunicorn worker dies; gunicorn starts a new one
    finally:
        blocker.rollback()
        blocker.close()
    with engine.begin() as conn:  # its heartbeat stops; age it past STALE_SECONDS instead of waiting
        conn.execute(text("UPDATE export_job SET heartbeat_at = heartbeat_at - :age WHERE id = :id"),
                     {"age": timedelta(minutes=10), "id": job_id})

    def finished() -> dict[str, Any] | None:
        node.warm(2)  # the replacement worker starts its export thread on its first request
        job = _job(engine, job_id)
        return job if job["status"] in ("done", "failed") else None

    done = wait_for(finished, 40, "the job to run again", every=0.5)
    assert done["status"] == "done" and done["attempts"] == 2 and int(done["worker"].split(".")[0]) != victim
    file = requests.get(f"{node.url}/v1/projects/1/exports/{job_id}/file", headers=bearer, timeout=30)
    assert file.status_code == 200 and file.content[:2] == b"PK"


# ------------------------------------------------------------------------------ S3


def test_s3_unreachable_gives_503_and_no_row_without_its_file(tmp_path: Path, request: pytest.FixtureRequest
                                                              ) -> None:
    from tests.support.s3server import start_seaweedfs

    s3 = start_seaweedfs(tmp_path / "s3")
    node = LiveServer.prepare(tmp_path / "node", cluster_settings(f"sqlite:///{tmp_path / 'carefile.db'}", s3,
                                                                  prefix="faults"))
    try:
        prepare(node, tmp_path)
        node.start()
        engine = create_engine(f"sqlite:///{tmp_path / 'carefile.db'}")
        before = f"uuid:{uuid.uuid4()}"
        assert post(node.url, visit_xml(before, photo=True), photo=b"\xff\xd8 first photo").status_code == 201
        s3.stop()  # the object store goes away
        lost = f"uuid:{uuid.uuid4()}"
        started = time.monotonic()
        resp = post(node.url, visit_xml(lost, photo=True), photo=b"\xff\xd8 second photo")
        assert_openrosa_503(resp, "文件存储", "file storage")
        assert time.monotonic() - started < 45
        assert instance_ids(engine) == [before]  # no row without its file
        ready = requests.get(f"{node.url}/readyz", timeout=60)
        assert ready.status_code == 503 and ready.json()["checks"]["blob_store"] == "unreachable"
        engine.dispose()
    finally:
        node.stop()
        s3.stop()


# ------------------------------------------------------------------------------ full disk


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (needs root); the blob folder of the server."""
    mount = tmp_path / "blobs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def test_full_disk_gives_503_saying_so_and_leaves_nothing_half_written(tmp_path: Path, tiny_disk: Path) -> None:
    node = LiveServer.prepare(tmp_path / "node", {"CAREFILE_STORAGE_URL": str(tiny_disk)})
    try:
        prepare(node, tmp_path)
        node.start()
        engine = create_engine(f"sqlite:///{tmp_path / 'node' / 'data' / 'carefile.db'}")

        def files() -> dict[str, str]:  # every file on the small disk and its sha256
            return {str(p.relative_to(tiny_disk)): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in tiny_disk.rglob("*") if p.is_file()}

        stored_before = files()  # the published form's XLSForm
        big = f"uuid:{uuid.uuid4()}"
        resp = post(node.url, visit_xml(big, photo=True), photo=os.urandom(2 * 1024 * 1024))
        assert_openrosa_503(resp, "磁盘已满", "disk is full")
        assert instance_ids(engine) == []
        assert files() == stored_before  # no partial file, not even a temporary one
        small = f"uuid:{uuid.uuid4()}"
        assert post(node.url, visit_xml(small, photo=True), photo=os.urandom(100 * 1024)).status_code == 201
        assert instance_ids(engine) == [small]
        assert all(Path(name).name == sha for name, sha in files().items() if "/" in name)  # whole files only
        engine.dispose()
    finally:
        node.stop()


# ------------------------------------------------------------------------------ what counts as a fault


def test_only_faults_of_the_environment_become_503() -> None:
    import errno

    from botocore.exceptions import ClientError, EndpointConnectionError
    from sqlalchemy.exc import IntegrityError, OperationalError

    from app.faults import classify

    def s3_error(status: int) -> ClientError:
        return ClientError({"Error": {"Code": "X"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    assert classify(OperationalError("SELECT 1", {}, Exception("connection refused")))[0] == "503.1"  # type: ignore[index]
    assert classify(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))[0] == "503.2"  # type: ignore[index]
    assert classify(s3_error(503))[0] == "503.2"  # type: ignore[index]
    assert classify(OSError(errno.ENOSPC, "No space left on device"))[0] == "503.3"  # type: ignore[index]
    # a bug or a refusal stays what it is (500 with a traceback, or the caller's own handling)
    assert classify(s3_error(403)) is None
    assert classify(IntegrityError("INSERT", {}, Exception("duplicate"))) is None
    assert classify(FileNotFoundError(errno.ENOENT, "gone")) is None
    assert classify(ValueError("bad")) is None
