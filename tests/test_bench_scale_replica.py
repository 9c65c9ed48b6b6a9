"""bench/scale --replica (bench/scale/server.py) on small servers: the standby is made with pg_basebackup,
follows the primary, is reused by the next run when it can follow it (the WAL it missed while stopped
included), and is made afresh when the primary ran without replication in between."""
from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.scale import server
from tests.support.pgserver import find_bindir, wait_for_replay

pytestmark = pytest.mark.skipif(find_bindir() is None, reason="needs PostgreSQL's server binaries")


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="carefile-bench-replica-"))
    if os.geteuid() == 0:  # the servers run as postgres
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    try:
        yield path
    finally:  # servers a failed test left running
        bindir, runas = server._binaries()
        for name in ("standby", "primary", "first"):
            if (path / name / "data" / "postmaster.pid").exists():
                server.Pg(path / name, 0, bindir, runas).stop()
        shutil.rmtree(path, ignore_errors=True)


def sql(pg: server.Pg, statement: str) -> object:
    eng = create_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            result = c.execute(text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        eng.dispose()


def next_run(root: Path, primary: server.Pg, standby: server.Pg, value: int,
             replica_between: bool) -> tuple[server.Pg, str | None]:
    """Both servers stopped (the standby first), `value` written on the primary meanwhile — by a run without
    replication when not `replica_between` — and the primary started again with replication, as a run starts."""
    standby.stop()
    if not replica_between:
        primary.stop()
        primary, _ = server.start_pg(root / "primary", fresh=False, replica=False)
    sql(primary, f"INSERT INTO t VALUES ({value})")
    primary.stop()
    return server.start_pg(root / "primary", fresh=False, replica=True)


def standby_of(root: Path, primary: server.Pg, before: str | None) -> tuple[server.Pg, float | None, str]:
    """The run's standby (made or reused), its base backup's seconds (None: reused) and what the run said first."""
    said: list[str] = []
    standby, backup_s = server.start_standby(primary, root / "standby", before, say=said.append)
    return standby, backup_s, said[0]


def followed(primary: server.Pg, standby: server.Pg, value: int) -> object:
    """`value` written on the primary; the standby's sum once it has replayed the write."""
    sql(primary, f"INSERT INTO t VALUES ({value})")
    wait_for_replay(primary.url("postgres"), standby.url("postgres"))
    return sql(standby, "SELECT sum(n) FROM t")


def test_standby_made_followed_reused_and_remade(root: Path) -> None:
    primary, before = server.start_pg(root / "primary", fresh=True, replica=True)
    assert before is None  # a new server
    sql(primary, "CREATE TABLE t (n int)")
    sql(primary, "INSERT INTO t VALUES (1)")
    standby, backup_s, said = standby_of(root, primary, before)
    assert backup_s is not None and "there is none yet" in said
    assert sql(standby, "SELECT pg_is_in_recovery()") is True
    assert sql(standby, "SELECT sum(n) FROM t") == 1
    assert sql(standby, "SHOW shared_buffers") == sql(primary, "SHOW shared_buffers")
    assert followed(primary, standby, 2) == 3

    # The next run: the standby stopped first, the primary wrote on; both start again on new ports.
    primary, before = next_run(root, primary, standby, 4, replica_between=True)
    assert before == "replica"
    standby, backup_s, said = standby_of(root, primary, before)
    assert backup_s is None and said.startswith("reusing the standby")
    assert sql(standby, "SELECT sum(n) FROM t") == 7
    primary.restart()  # as the cold measurements do (restart_cold, without dropping the OS cache here)
    standby.restart()
    assert followed(primary, standby, 8) == 15

    # A run without --replica in between (wal_level=minimal): the standby cannot follow, it is made afresh.
    primary, before = next_run(root, primary, standby, 16, replica_between=False)
    assert before == "minimal"
    standby, backup_s, said = standby_of(root, primary, before)
    assert backup_s is not None and "wal_level=minimal" in said
    assert sql(standby, "SELECT sum(n) FROM t") == 31
    standby.stop()
    primary.stop()


def test_standby_of_another_server_is_not_reused_and_other_folders_are_left_alone(root: Path) -> None:
    first, _ = server.start_pg(root / "first", fresh=True, replica=True)
    standby, _ = server.start_standby(first, root / "standby", None, say=lambda m: None)
    standby.stop()
    first.stop()
    primary, before = server.start_pg(root / "primary", fresh=True, replica=True)
    problem = server.standby_problem(primary, root / "standby", "replica")
    assert problem is not None and "system identifier" in problem
    (root / "standby" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="notes.txt"):
        server.start_standby(primary, root / "standby", "replica", say=lambda m: None)
    assert (root / "standby" / "notes.txt").read_text() == "mine"
    primary.stop()
