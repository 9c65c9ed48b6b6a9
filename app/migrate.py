"""Schema migrations (Alembic) run from code: `carefile init` and the tests use upgrade().

Several app servers starting together (`carefile serve` on each node) all call upgrade(): one of them
migrates, the others wait and then find the schema at head. PostgreSQL: a transaction-level advisory
lock (`pg_advisory_xact_lock`) taken before Alembic reads its version table, released at commit, in the
same transaction as the migration (PostgreSQL runs DDL transactionally). SQLite: the migration runs in a
BEGIN IMMEDIATE transaction, so a second process waits on the database's write lock (busy_timeout).
`then` runs inside the same locked transaction: set-up that must also happen once (the default project).
`first_start_lock()` serialises what `carefile serve` does on a fresh installation (publishing the shipped
forms), so two nodes do not both publish them.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Alembic logs its plugin set-up and each step at INFO; CLI commands (`carefile form list`, `user token`)
# must print only their own output. Set before alembic is imported: the plugin lines come at import.
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import Connection, Engine, text  # noqa: E402

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key (any bigint; one per purpose): "CareFile migrations".
MIGRATION_LOCK_KEY = 0x43415245_4D494752
FIRST_START_LOCK_KEY = 0x43415245_46495253  # "CAREFIRS"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, then: Callable[[Connection], None] | None = None, secret_key: str | None = None) -> None:
    """Create or upgrade the schema to the newest revision (safe to run again, and from several processes
    at once: one migrates while the others wait for it); then run `then` in the same transaction.
    `secret_key`: the server's, for migrations that seal secrets under it (0021)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    cfg.attributes["secret_key"] = secret_key
    bind = engine.execution_options(sqlite_immediate=True) if engine.dialect.name == "sqlite" else engine
    with bind.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        if then is not None:
            then(conn)


@contextmanager
def first_start_lock(engine: Engine) -> Iterator[None]:
    """Hold a PostgreSQL session advisory lock for the block (one connection kept for it); the other nodes
    wait. SQLite (servers on one machine sharing the file): an flock on a file next to the database."""
    if engine.dialect.name != "postgresql":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        import fcntl
        import os

        fd = os.open(f"{database}-first-start.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": FIRST_START_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": FIRST_START_LOCK_KEY})
            conn.commit()
