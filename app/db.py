"""Engine and session set-up for SQLite (embedded default) and PostgreSQL.

SQLite runs in WAL mode with full fsync. Transactions that write use BEGIN IMMEDIATE
(`Database.write()`), so two workers never deadlock upgrading a read lock to a write lock;
they queue on busy_timeout instead.

Concurrency (docs/architecture.md, *Locks*). SQLite serialises writers: a write transaction sees every earlier
commit and nothing changes under it. PostgreSQL runs READ COMMITTED, so where two requests can
race on the same row the services take that row first with `SELECT … FOR UPDATE`
(SQLAlchemy's `with_for_update()`, which SQLite ignores) and decide inside the transaction: a
single-table `FOR UPDATE` waits for the other transaction and then returns the row as committed,
and every later statement sees that commit. Lock order is always "older row first" (the
submission version being edited before the entity list), so these locks cannot deadlock each
other; should PostgreSQL still report a deadlock or a serialization failure,
`is_retryable()` says so and the caller repeats the whole transaction a bounded number of times
(`RETRY_ATTEMPTS`).
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.prepared import RawConnection

log = logging.getLogger(__name__)

# PostgreSQL SQLSTATEs after which the same transaction, run again, can succeed:
# serialization_failure, deadlock_detected, lock_not_available.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
RETRY_ATTEMPTS = 4
T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """Whether a database error means "lost a race; run the transaction again" (never a data error)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in RETRYABLE_SQLSTATES


def retry_pause(attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1` (short, growing, jittered)."""
    import random

    return min(0.5, 0.02 * (2 ** attempt)) * (0.5 + random.random())


def retrying(run: Callable[[], T], what: str = "transaction") -> T:
    """Run `run` (one whole transaction, begun and committed inside it) again when PostgreSQL reports a lost
    race (deadlock, serialization failure: `is_retryable`), up to RETRY_ATTEMPTS times; the user never sees
    the race as a 5xx unless every attempt loses. Any other error passes through at once."""
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return run()
        except DBAPIError as err:
            if not is_retryable(err) or attempt == RETRY_ATTEMPTS:
                raise
            log.warning("%s: %s, attempt %d of %d; retrying", what, type(err.orig).__name__, attempt, RETRY_ATTEMPTS)
            time.sleep(retry_pause(attempt))
    raise AssertionError("unreachable")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# Connection pool, per process. A request holds at most about three connections at once (the request's
# shared reader, a write transaction, occasionally a third session), the export worker thread one or
# two. Connections beyond pool_size are closed when returned, so a pool smaller than the peak opens and
# closes a connection every few requests (that was the churn seen with 4 threads per worker and the
# default pool of 5). LIFO hands out the most recently used connection, so a sync worker keeps reusing
# its two or three and never opens the rest; max_overflow bounds a burst.
POOL_SIZE = 10
MAX_OVERFLOW = 5
REPLICA_CONNECT_TIMEOUT = 5


def private_sqlite_files(path: Path) -> None:
    """The SQLite file, made before SQLite opens it, and its WAL/SHM/journal: owner only (0600; the folder
    0700) whatever the umask. SQLite gives the WAL and SHM the main file's permissions."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            st = name.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(name, 0o600)


def make_engine(url: str, echo: bool = False, pool_size: int | None = None, max_overflow: int | None = None,
                connect_timeout: int | None = None) -> Engine:
    parsed = make_url(url)
    # orjson decodes the stored answers several times faster than json (exports, lists, views).
    # hide_parameters: SQL errors (logged with tracebacks) and echo never show the values, which may be a
    # child's name or a guardian's phone number.
    kwargs: dict[str, Any] = {"echo": echo, "future": True, "json_serializer": _json_dumps,
                              "json_deserializer": orjson.loads, "hide_parameters": True}
    memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
    if not memory:
        kwargs.update(pool_size=pool_size or POOL_SIZE, pool_use_lifo=True,
                      max_overflow=MAX_OVERFLOW if max_overflow is None else max_overflow)
    if parsed.get_backend_name() == "sqlite":
        if not memory:
            private_sqlite_files(Path(str(parsed.database)))
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, **kwargs)
        _setup_sqlite(engine)
        return engine
    if connect_timeout is not None:
        kwargs["connect_args"] = {"connect_timeout": connect_timeout}
    engine = create_engine(url, **kwargs)
    _ping_idle_connections(engine)
    return engine


# A pooled PostgreSQL connection idle for longer than this is checked (one round trip) before it is handed
# out, so requests after a database restart or a dropped connection get a new one. One used within the last
# second is handed out as is: a busy worker saves two round trips per submission (pool_pre_ping pings on
# every checkout). The cost: a connection last used less than a second before the database went away fails
# its request once (a 503 the phone retries; the pool then replaces every older connection).
PING_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    from sqlalchemy.exc import DisconnectionError

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["carefile_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("carefile_idle_since")
        if since is not None and time.monotonic() - since <= PING_IDLE_SECONDS:
            return
        try:
            cur = dbapi_conn.cursor()
            try:
                cur.execute("SELECT 1")
            finally:
                cur.close()
            if not dbapi_conn.autocommit:
                dbapi_conn.rollback()  # the ping's implicit transaction
        except Exception as exc:  # the pool discards this connection and connects again (up to 3 times)
            raise DisconnectionError(f"stale connection: {type(exc).__name__}") from exc


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Checkpoints outside commits: one inside a commit runs while the writer queue is held, and every other
        # writer waits for it. Database.write() runs a passive one after its turn every CHECKPOINT_EVERY
        # commits; SQLite's own (in the commit) only past 10,000 pages of log (40 MB: bulk loads, other tools).
        cur.execute("PRAGMA wal_autocheckpoint=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("sqlite_autocommit", False):
            return  # Database.reader(): each statement is its own read transaction (no BEGIN/ROLLBACK)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("sqlite_immediate", False) else "BEGIN")


# SQLite: a passive WAL checkpoint after this many commits of a process (≈ 1,000–2,000 pages of WAL between
# checkpoints at a few pages per submission; SQLite's own default is 1,000 pages).
CHECKPOINT_EVERY = 200


class WriterQueue:
    """SQLite admits one writer at a time. A writer that finds the database locked waits in SQLite's busy
    handler, which sleeps 1, 2, 5, 10 … ms before trying again, so with several workers writing, the
    database sat unused between transactions. Writers of every process on this machine instead take turns
    on a lock file (flock): the next one starts as soon as the last commits. PostgreSQL: no queue.

    Re-entrant within a thread (an inner write would be refused by SQLite as before, not deadlock here)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        with self._lock:  # the threads of this process, in turn
            outer = self._depth == 0
            if outer:
                if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # the processes, in turn
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if outer:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)


class KeyedLocks:
    """A lock per key shared by every worker: two holders of one key take turns, other keys run on (keys
    sharing a bucket take turns too). First a lock per bucket for the threads of this process; then SQLite
    (servers on one machine): a byte of a lock file per bucket (fcntl.lockf); PostgreSQL: a session advisory
    lock on a connection of the pool (Database.keyed_lock)."""

    BUCKETS = 1 << 16

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._threads = [threading.Lock() for _ in range(64)]
        self._fd: int | None = None
        self._pid = 0
        self._open = threading.Lock()

    @staticmethod
    def number(key: str) -> int:
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)

    @contextmanager
    def thread_lock(self, key: str) -> Iterator[None]:
        with self._threads[self.number(key) % self.BUCKETS % len(self._threads)]:
            yield

    @contextmanager
    def file_lock(self, key: str) -> Iterator[None]:
        bucket = self.number(key) % self.BUCKETS
        with self._threads[bucket % len(self._threads)]:
            if self.path is None:
                yield
                return
            with self._open:
                if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._pid = os.getpid()
                fd = self._fd
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, bucket)
            try:
                yield
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, bucket)


class Database:
    """Holds the engine and two session factories: read (deferred) and write (immediate).

    With `read_url` (a PostgreSQL streaming replica, hot standby) the long reads — exports, OData pages, the
    county report, the dashboard's refresh — run there (`bulk_read`); writes and interactive pages stay on
    the primary (docs/architecture.md, *Reads off the primary*)."""

    def __init__(self, url: str, echo: bool = False, pool_size: int | None = None,
                 max_overflow: int | None = None, read_url: str | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
        self.url_key = str(self.engine.url)  # the database's name in per-process memos (as str(engine.url))
        # A replica that does not answer within REPLICA_CONNECT_TIMEOUT seconds is skipped (the primary reads).
        self.read_engine = (make_engine(read_url, echo=echo, pool_size=pool_size, max_overflow=max_overflow,
                                        connect_timeout=REPLICA_CONNECT_TIMEOUT) if read_url else None)
        self._bulk = sessionmaker(self.read_engine, expire_on_commit=False) if self.read_engine else None
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        write_bind = self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        self._write = sessionmaker(write_bind, expire_on_commit=False)
        # Lookups on hot paths (auth, the form of a submission) need no transaction: autocommit saves the
        # BEGIN and ROLLBACK (PostgreSQL: round trips; SQLite: two statements) of every reader session.
        reader_bind = (self.engine.execution_options(sqlite_autocommit=True) if self.is_sqlite
                       else self.engine.execution_options(isolation_level="AUTOCOMMIT"))
        self._reader = sessionmaker(reader_bind, expire_on_commit=False)
        self._shared: ContextVar[Session | None] = ContextVar(f"carefile_reader_{id(self)}", default=None)
        self._shared_raw: ContextVar[list[RawConnection] | None] = ContextVar(f"carefile_raw_{id(self)}",
                                                                              default=None)
        database = make_url(url).database if self.is_sqlite else None
        self._commits = 0
        self._writers = WriterQueue(f"{database}-writers.lock" if database and database != ":memory:" else None)
        self._keyed = KeyedLocks(f"{database}-keys.lock" if database and database != ":memory:" else None)

    @contextmanager
    def keyed_lock(self, key: str) -> Iterator[None]:
        """Hold the lock named `key` for the block, across every worker and node (see KeyedLocks): e.g. the
        attempts at one account's password take turns, so a limit on them holds under parallel requests."""
        if self.is_sqlite:
            with self._keyed.file_lock(key):
                yield
            return
        number = KeyedLocks.number(key)
        # The threads of this process queue here first, so at most one connection per process waits on the
        # advisory lock (threads waiting on it would otherwise take the whole pool).
        with self._keyed.thread_lock(key), self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": number})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": number})
                conn.commit()

    def session(self) -> Session:
        return self._read()

    @contextmanager
    def bulk_read(self) -> Iterator[Session]:
        """A session for a long read (an export, an OData page, a report): on the read replica when one is
        set and answering, else on the primary. Never write in it. `session.info["as_of"]` is the time of
        the last change the replica has applied while it lags behind the primary (figures are as of then),
        None when it is caught up or there is no replica."""
        session = self.bulk_session()
        try:
            yield session
        finally:
            session.close()

    def bulk_session(self) -> Session:
        """bulk_read's session for a caller that closes it itself (a streamed answer)."""
        return self._replica_session() or self._read()

    def _replica_session(self) -> Session | None:
        if self._bulk is None:
            return None
        session = self._bulk()
        try:
            row = session.execute(text(
                "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn() IS NOT DISTINCT FROM "
                "pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp()")).one()
        except DBAPIError as exc:  # the replica is down or unreachable: the primary answers instead
            session.close()
            log.warning("read replica unavailable (%s); reading from the primary", type(exc.orig).__name__)
            return None
        in_recovery, caught_up, replayed = row
        session.info["replica"] = bool(in_recovery)
        session.info["as_of"] = None if (caught_up or not in_recovery) else replayed
        return session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A session for a few independent lookups (each statement sees the latest commits); never write.

        Inside `request_scope()` every reader of the request shares one session (one connection)."""
        shared = self._shared.get()
        if shared is not None:
            yield shared
            return
        session = self._reader()
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def request_scope(self) -> Iterator[None]:
        """Let the readers of one HTTP request share a connection (one pool checkout instead of several).
        Readers run in autocommit mode on both backends, so sharing holds no read snapshot open."""
        session = self._reader()
        token = self._shared.set(session)
        raw: list[RawConnection] = []  # raw_reader's connection, made on first use
        raw_token = self._shared_raw.set(raw)
        try:
            yield
        finally:
            self._shared.reset(token)
            self._shared_raw.reset(raw_token)
            session.close()
            for conn in raw:
                self._release(conn, autocommit=True)

    # -- the submission hot path (app/prepared.py): pooled driver connections without Session or Connection --

    @contextmanager
    def raw_reader(self) -> Iterator[RawConnection]:
        """A pooled driver connection in autocommit mode for prepared lookups (one per request_scope)."""
        shared = self._shared_raw.get()
        if shared is None:
            with self._own(autocommit=True) as conn:
                yield conn
            return
        if not shared:
            shared.append(self._acquire(autocommit=True))
        yield shared[0]

    @contextmanager
    def raw_write(self, one_statement: bool = False) -> Iterator[RawConnection]:
        """One write transaction on a pooled driver connection, as `write()` (the writers' turn on SQLite, BEGIN
        IMMEDIATE, commit on success, rollback on error), for statements run by app/prepared.py.
        `one_statement`: the caller runs a single statement, which PostgreSQL makes atomic by itself — it runs
        in autocommit mode, without the round trips of BEGIN and COMMIT."""
        # raw_reader's connection (inside a request_scope the request's own) serves the write too: one pooled
        # connection per request, as many as a worker has threads (more would overflow the pool and be closed on
        # return). It is in autocommit mode: fit for PostgreSQL's single statement, and for SQLite, whose
        # BEGIN IMMEDIATE … COMMIT below is explicit.
        if one_statement and not self.is_sqlite:
            with self.raw_reader() as conn:
                yield conn
            return
        with self._writers.turn(), (self.raw_reader() if self.is_sqlite else self._own(autocommit=False)) as conn:
            dbapi = conn.connection.dbapi_connection
            try:
                if self.is_sqlite:
                    conn.call("BEGIN IMMEDIATE", lambda: dbapi.execute("BEGIN IMMEDIATE"))
                yield conn
                conn.call("COMMIT", dbapi.commit)
            except BaseException:
                try:
                    dbapi.rollback()
                except Exception:  # noqa: BLE001 - the connection is gone: the pool replaces it
                    conn.invalidate()
                raise
        self._count_commit()

    @contextmanager
    def _own(self, autocommit: bool) -> Iterator[RawConnection]:
        conn = self._acquire(autocommit)
        try:
            yield conn
        finally:
            self._release(conn, autocommit)

    def _acquire(self, autocommit: bool) -> RawConnection:
        dialect = self.engine.dialect
        try:
            pooled = self.engine.raw_connection()
        except dialect.loaded_dbapi.Error as err:  # as Engine.connect() raises it (app/faults.py: a 503)
            raise DBAPIError.instance(None, None, err, dialect.loaded_dbapi.Error, dialect=dialect) from err
        if autocommit and not self.is_sqlite:
            pooled.dbapi_connection.autocommit = True  # psycopg: no statement sent
        return RawConnection(pooled, self.engine.dialect)

    def _release(self, conn: RawConnection, autocommit: bool) -> None:
        pooled = conn.connection
        if autocommit and not self.is_sqlite and pooled.dbapi_connection is not None:
            try:
                pooled.dbapi_connection.autocommit = False  # as the pool hands connections out
            except Exception:  # noqa: BLE001 - broken connection: drop it
                pooled.invalidate()
        pooled.close()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction: committed on success, rolled back on error."""
        with self._writers.turn():
            session = self._write()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        self._count_commit()

    def _count_commit(self) -> None:
        if self._writers.path is not None:
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0:
                self.checkpoint()

    def checkpoint(self) -> None:
        """SQLite: copy what the write-ahead log holds into the database file, without blocking readers or
        writers (PASSIVE: it does what it can now; the next one does the rest)."""
        try:
            with self.engine.execution_options(sqlite_autocommit=True).connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except DBAPIError as exc:  # the WAL keeps growing a little until the next one; nothing is lost
            log.warning("SQLite checkpoint failed: %s", type(exc.orig).__name__)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()
