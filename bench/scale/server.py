"""The scale bench's PostgreSQL servers (README.md): the primary on --data-dir and, with --replica, a hot
standby of it (pg_basebackup -R, streaming replication) in its own folder on its own port. Both run on this
machine and both folders are kept after the run (the standby is reused when it can follow the primary)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from tests.support.pgserver import base_backup, find_bindir, free_port, wait_for_replay

DBNAME = "carefile_scale"
# A bench server: durability off (fsync, full pages), memory for a 23 GB machine shared with others,
# prefetching for SSD storage as README.md recommends (the cold name search fetches its rows in parallel).
# The standby gets the same memory settings.
COMMON = ("-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_wal_size=2GB "
          "-c shared_buffers=2GB -c effective_cache_size=8GB -c work_mem=32MB -c maintenance_work_mem=1GB "
          "-c max_connections=50 -c autovacuum=on -c effective_io_concurrency=128")  # SSD: README.md
NO_REPLICATION = "-c wal_level=minimal -c max_wal_senders=0"
# pg_basebackup -X stream takes two WAL senders, the running standby one. A standby stopped between runs
# finds the WAL it has not replayed yet still kept (wal_keep_size) when the primary wrote less than that.
REPLICATION = "-c wal_level=replica -c max_wal_senders=4 -c wal_keep_size=2GB"
# A standby answers the long reads; hot_standby_feedback keeps the primary's vacuum from removing rows a
# running export still reads (otherwise the standby cancels the export after max_standby_streaming_delay).
STANDBY = "-c hot_standby=on -c hot_standby_feedback=on"
CATCH_UP_TIMEOUT = 900.0  # seconds a standby may take to replay what the primary wrote since it stopped
SUBDIRS = {"data", "sock", "log"}  # what start_server keeps in a server's folder


@dataclass
class Pg:
    datadir: Path  # the server's folder: data/ (PostgreSQL's data folder), sock/, log
    port: int
    bindir: Path
    runas: list[str]

    def url(self, db: str = DBNAME) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def restart(self) -> None:
        """Restart the server (its shared buffers emptied), with the options it was started with."""
        subprocess.run(self.runas + [str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-m", "fast",
                                     "-l", str(self.datadir / "log"), "-w", "restart"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    def stop(self) -> None:
        subprocess.run(self.runas + [str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-m", "fast",
                                     "-w", "stop"], capture_output=True, check=False)


def restart_cold(servers: list[Pg]) -> None:
    """Restart the servers (primary first, then its standby) and drop the OS page cache: nothing of the
    database is in memory afterwards (needs root; without it only the servers' own caches are emptied)."""
    for server in servers:
        server.restart()
    if os.geteuid() == 0:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _binaries() -> tuple[Path, list[str]]:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql, or CAREFILE_PG_BINDIR)")
    return bindir, (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])


def _folder(path: Path) -> None:
    """The server's folder and its socket folder, owned by the user the server runs as."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "sock").mkdir(exist_ok=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for p in (path, path / "sock"):
            os.chown(p, pw.pw_uid, pw.pw_gid)


def control_data(datadir: Path) -> dict[str, str]:
    """pg_controldata of a (stopped or running) server's folder: {"Database system identifier": …, …}."""
    bindir, runas = _binaries()
    out = subprocess.run(runas + [str(bindir / "pg_controldata"), "-D", str(datadir / "data")], check=True,
                         capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def _start(datadir: Path, options: str, bindir: Path, runas: list[str]) -> Pg:
    port = free_port()
    opts = f"-p {port} -k {datadir / 'sock'} -c listen_addresses=127.0.0.1 {options}"
    subprocess.run(runas + [str(bindir / "pg_ctl"), "-D", str(datadir / "data"), "-l", str(datadir / "log"), "-w",
                            "-o", opts, "start"], check=True, capture_output=True)
    return Pg(datadir, port, bindir, runas)


def start_pg(datadir: Path, fresh: bool, replica: bool = False) -> tuple[Pg, str | None]:
    """initdb (fresh) and start a server on datadir/data; the folder is kept after the run. `replica`: with
    what streaming replication needs (wal_level=replica, WAL senders). Also the wal_level the server last
    ran with (pg_control, read before this start; None for a new one): "minimal" means a standby made
    earlier cannot follow it any more."""
    bindir, runas = _binaries()
    if fresh and datadir.exists():
        shutil.rmtree(datadir)
    _folder(datadir)
    before = None
    if not (datadir / "data" / "PG_VERSION").exists():
        subprocess.run(runas + [str(bindir / "initdb"), "-D", str(datadir / "data"), "-U", "postgres",
                                "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
    else:
        before = control_data(datadir).get("wal_level setting")
    return _start(datadir, f"{COMMON} {REPLICATION if replica else NO_REPLICATION}", bindir, runas), before


def standby_problem(primary: Pg, folder: Path, wal_level_before: str | None) -> str | None:
    """Why the standby in `folder` cannot be reused for `primary` (None: it can)."""
    if not (folder / "data" / "PG_VERSION").exists():
        return "there is none yet"
    if subprocess.run(primary.runas + [str(primary.bindir / "pg_ctl"), "-D", str(folder / "data"), "status"],
                      capture_output=True, check=False).returncode == 0:
        raise SystemExit(f"a server is running on {folder / 'data'} (left running by an earlier run?): stop it "
                         f"first (pg_ctl -D {folder / 'data'} stop)")
    if not (folder / "data" / "standby.signal").exists():
        return "it is not a standby (no standby.signal)"
    mine, its = (control_data(primary.datadir).get("Database system identifier"),
                 control_data(folder).get("Database system identifier"))
    if mine != its:
        return f"it is a copy of another server (system identifier {its}, the primary's is {mine})"
    if wal_level_before not in ("replica", "logical"):
        return (f"the primary last ran with wal_level={wal_level_before} (a run without --replica): its WAL since "
                "then cannot be replayed")
    return None


def _clear(folder: Path) -> None:
    """Remove a standby's folder before making it afresh — only one that holds a server's folder (or nothing)."""
    if not folder.exists():
        return
    others = {p.name for p in folder.iterdir()} - SUBDIRS
    if others:
        raise SystemExit(f"{folder} holds other things than a standby's folder ({', '.join(sorted(others))}): "
                         "remove them or choose another --replica-dir")
    shutil.rmtree(folder)


def start_standby(primary: Pg, folder: Path, wal_level_before: str | None,
                  say: Callable[[str], None] = print) -> tuple[Pg, float | None]:
    """A hot standby of `primary` in `folder`, started on its own port with the primary's memory settings
    and caught up (it has replayed the primary's WAL up to the primary's current position). Reused when it
    is a standby of this primary that can follow it, else made afresh with pg_basebackup -R. Also the
    seconds the base backup took (None: reused)."""
    bindir, runas = primary.bindir, primary.runas
    options = (f"{COMMON} {REPLICATION} {STANDBY} "
               f"-c \"primary_conninfo=host=127.0.0.1 port={primary.port} user=postgres\"")  # the port changes
    why = standby_problem(primary, folder, wal_level_before)
    if why is None:
        say(f"reusing the standby in {folder}")
        standby = None
        try:
            standby = _start(folder, options, bindir, runas)
            took = wait_for_replay(primary.url("postgres"), standby.url("postgres"), CATCH_UP_TIMEOUT)
            say(f"the standby caught up in {took:.0f} s")
            return standby, None
        except (subprocess.CalledProcessError, TimeoutError, DBAPIError) as exc:  # DBAPIError: it stopped
            why = f"it did not catch up ({type(exc).__name__}: {str(exc).splitlines()[0]}; see {folder / 'log'})"
        if standby is not None:
            standby.stop()
    say(f"making the standby in {folder} afresh ({why}): pg_basebackup of the whole database")
    _clear(folder)
    _folder(folder)
    t = time.perf_counter()
    base_backup(primary, folder / "data")
    backup_s = time.perf_counter() - t
    say(f"base backup: {backup_s:.0f} s ({backup_s / 60:.1f} min)")
    standby = _start(folder, options, bindir, runas)
    try:
        wait_for_replay(primary.url("postgres"), standby.url("postgres"), CATCH_UP_TIMEOUT)
    except BaseException:
        standby.stop()
        raise
    return standby, backup_s
