"""A throwaway PostgreSQL server for the tests (recipes.md): initdb, start, stop.

Works as root (runs the server as the `postgres` user) and as an ordinary user.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


def find_bindir() -> Path | None:
    env = os.environ.get("CAREFILE_PG_BINDIR")
    candidates = [env] if env else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(str(Path(which).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server(Protocol):
    """What the helpers below need of a running server (PgServer, or the scale bench's own)."""

    port: int
    bindir: Path
    runas: list[str]


@dataclass
class PgServer:
    root: Path
    port: int
    bindir: Path
    runas: list[str]

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        subprocess.run(self.runas + [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m",
                                     "immediate", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PgServer:
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql, or set "
                           "CAREFILE_PG_BINDIR)")
    root = Path(tempfile.mkdtemp(prefix="carefile-pg-"))
    runas: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        runas = ["runuser", "-u", "postgres", "--"]
    (root / "sock").mkdir()
    if runas:
        os.chown(root / "sock", pw.pw_uid, pw.pw_gid)
    port = free_port()
    subprocess.run(runas + [str(bindir / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
    subprocess.run(runas + [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w",
                            "-o", f"-p {port} -k {root / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=off "
                            "-c max_connections=200 -c full_page_writes=off", "start"],
                   check=True, capture_output=True)
    return PgServer(root, port, bindir, runas)


def fresh_database(server: PgServer, name: str) -> str:
    """Drop and create database `name` on the test server; its SQLAlchemy URL."""
    from sqlalchemy import create_engine, text

    admin = create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            c.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return server.url(name)


def base_backup(primary: Server, datadir: Path) -> None:
    """A standby's data folder: pg_basebackup -R of `primary` into `datadir` (streamed WAL, fast checkpoint;
    standby.signal and primary_conninfo written). The primary needs wal_level=replica and two WAL senders."""
    subprocess.run(primary.runas + [str(primary.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p",
                                    str(primary.port), "-U", "postgres", "-D", str(datadir), "-R",
                                    "-X", "stream", "-c", "fast"], check=True, capture_output=True)


def wait_for_replay(primary_url: str, standby_url: str, timeout: float = 30.0) -> float:
    """Wait until the standby has replayed the primary's WAL up to the primary's current position; the seconds
    it took. TimeoutError if it has not within `timeout` seconds.

    The position: a transaction of its own on the primary writes a WAL record (a logical-decoding message,
    which nothing reads) and commits synchronously, so every commit before it is written out too (also under
    synchronous_commit=off); then the primary's WAL write position, which the standby's replay position
    reaches once it has replayed that commit. (Not the insert position: it may lie past a page header that
    no record follows yet; not the write position alone: asynchronous commits may not be written out.)"""
    from sqlalchemy import create_engine, text

    t0 = time.monotonic()
    p = create_engine(primary_url, isolation_level="AUTOCOMMIT")
    s = create_engine(standby_url, isolation_level="AUTOCOMMIT")
    try:
        with p.connect() as pc:
            pc.execute(text("SET synchronous_commit = on"))
            pc.execute(text("SELECT pg_logical_emit_message(true, 'carefile', 'replay mark')"))
            lsn = pc.execute(text("SELECT pg_current_wal_lsn()")).scalar()
        with s.connect() as sc:
            while True:
                replayed, done = sc.execute(text("SELECT pg_last_wal_replay_lsn(), "
                                                 "pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)"),
                                            {"lsn": lsn}).one()
                if done:
                    return time.monotonic() - t0
                if time.monotonic() - t0 > timeout:
                    raise TimeoutError(f"the standby replayed up to {replayed}, the primary is at {lsn} "
                                       f"(waited {timeout:.0f} s)")
                time.sleep(0.05)
    finally:
        p.dispose()
        s.dispose()


def start_standby(primary: PgServer) -> PgServer:
    """A hot standby of `primary` (streaming replication): pg_basebackup -R, then start it on its own port.
    initdb --auth=trust lets replication connections in from 127.0.0.1; wal_level=replica is the default."""
    root = Path(tempfile.mkdtemp(prefix="carefile-pg-standby-"))
    if primary.runas:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    (root / "sock").mkdir()
    if primary.runas:
        os.chown(root / "sock", pw.pw_uid, pw.pw_gid)
    port = free_port()
    base_backup(primary, root / "data")
    subprocess.run(primary.runas + [str(primary.bindir / "pg_ctl"), "-D", str(root / "data"), "-l",
                                    str(root / "log"), "-w", "-o",
                                    f"-p {port} -k {root / 'sock'} -c listen_addresses=127.0.0.1 -c hot_standby=on "
                                    "-c max_connections=200",
                                    "start"], check=True, capture_output=True)
    return PgServer(root, port, primary.bindir, primary.runas)
