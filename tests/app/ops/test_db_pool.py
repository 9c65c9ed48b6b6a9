"""Connection pools: no churn under sequential or threaded load; stale connections replaced after idling."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from tests.app.conftest import PASSWORD, submission_body
from tests.support.digest_client import DigestClient
from tests.support.sample_forms import household_xml


def pool_counter(rt: Any) -> dict[str, int]:
    counts = {"connect": 0, "close": 0}
    event.listen(rt.db.engine.pool, "connect", lambda *a: counts.__setitem__("connect", counts["connect"] + 1))
    event.listen(rt.db.engine.pool, "close", lambda *a: counts.__setitem__("close", counts["close"] + 1))
    return counts


def test_threaded_submissions_reuse_pooled_connections(app: Any, rt: Any, household: Any, collector: Any) -> None:
    counts = pool_counter(rt)
    statuses: list[int] = []

    def phone() -> None:
        client = DigestClient(app.test_client(), "tashi", PASSWORD)
        for _ in range(6):
            resp = client.post("/v1/projects/1/submission", content_type="multipart/form-data",
                               data=submission_body(household_xml(f"uuid:{uuid.uuid4()}"), {"photo.jpg": b"x"}))
            statuses.append(resp.status_code)

    threads = [threading.Thread(target=phone) for _ in range(4)]  # like a worker with 4 threads
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 24
    # 24 submissions (each several sessions): the pool opens at most a few connections per thread and
    # never closes one (a connection closed on return is what churn looks like).
    assert counts["close"] == 0
    assert counts["connect"] <= 10


def test_sequential_requests_use_one_or_two_connections(app: Any, rt: Any, submit: Callable[..., Any]) -> None:
    assert submit(household_xml("uuid:warm")).status_code == 201
    counts = pool_counter(rt)
    for i in range(15):
        assert submit(household_xml(f"uuid:seq-{i}")).status_code == 201
    assert counts == {"connect": 0, "close": 0}  # the warm connections are reused


def _terminate(rt: Any) -> int:
    """End the backend of the pool's connection, as a database restart would; its pid."""
    with rt.db.session() as s:
        pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin = create_engine(rt.db.url, poolclass=NullPool)
    with admin.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    admin.dispose()
    return int(pid)


def test_stale_postgresql_connection_is_replaced(backend: str, rt: Any, app: Any, monkeypatch: Any) -> None:
    """A connection idle for longer than PING_IDLE_SECONDS is checked before use and replaced if dead."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL only: a SQLite connection does not go stale")
    from app import db as db_module

    pid = _terminate(rt)
    monkeypatch.setattr(db_module, "PING_IDLE_SECONDS", 0.0)  # as after a second of idling
    with rt.db.session() as s:
        assert s.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 200


def test_connection_lost_while_busy_fails_once_then_recovers(backend: str, rt: Any, app: Any,
                                                             submit: Callable[..., Any]) -> None:
    """A connection used within the last second is not pinged: if the database went away meanwhile, that one
    request fails with a 503 (Collect retries it) and the pool replaces its connections."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL only: a SQLite connection does not go stale")
    assert submit(household_xml("uuid:before")).status_code == 201
    pid = _terminate(rt)
    first = submit(household_xml("uuid:lost"))
    assert first.status_code == 503 and b"OpenRosaResponse" in first.data, first.data
    assert int(first.headers["Retry-After"]) > 0
    again = submit(household_xml("uuid:lost"))
    assert again.status_code == 201
    with rt.db.session() as s:
        assert s.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid


def test_sqlite_writers_take_turns_on_a_lock_file(tmp_path: Any) -> None:
    """SQLite writers of different processes queue on an flock'ed file (not SQLite's sleeping busy handler);
    a forked worker opens its own descriptor; writes nest within a thread without deadlock."""
    import time

    from app.db import Database
    from tests.support.locks import flock_held_elsewhere

    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    assert db._writers.path == str(tmp_path / "q.db") + "-writers.lock"
    with flock_held_elsewhere(db._writers.path):
        started = time.monotonic()
        with db.write() as s:  # waits for the other process's turn to end
            waited = time.monotonic() - started
            s.execute(text("CREATE TABLE t (x INTEGER)"))
            with db.write() as inner:  # nested in the same thread: no deadlock in the queue
                assert inner is not s
        assert waited >= 0.3, waited
    assert Database("sqlite://")._writers.path is None  # in memory: nothing to share
    db.dispose()


def test_sqlite_checkpoints_after_writes_outside_the_writer_queue(tmp_path: Any, monkeypatch: Any) -> None:
    """The write-ahead log is copied into the database by a passive checkpoint after every CHECKPOINT_EVERY
    commits (not inside a commit, where every other writer would wait for it)."""
    from app import db as db_module
    from app.db import Database

    monkeypatch.setattr(db_module, "CHECKPOINT_EVERY", 5)
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.write() as s:
        s.execute(text("CREATE TABLE t (x TEXT)"))
    wal = tmp_path / "w.db-wal"
    runs: list[int] = []
    real = db.checkpoint
    monkeypatch.setattr(db, "checkpoint", lambda: (runs.append(db._commits), real()))
    for _ in range(9):
        with db.write() as s:
            s.execute(text("INSERT INTO t VALUES (:x)"), {"x": "x" * 5000})
    assert runs == [5, 10]
    assert (tmp_path / "w.db").stat().st_size > 9 * 5000  # the rows reached the database file itself
    assert wal.exists()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 10000
    db.dispose()
