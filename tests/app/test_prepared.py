"""app/prepared.py: statements on the driver's cursor write and read what Core writes and reads, and fail as
Core fails (the ingest retries and the 503s depend on SQLAlchemy's exception types)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from app.models import User
from app.prepared import Prepared

USERS = User.__table__
INSERT = Prepared(USERS.insert(), [c.key for c in USERS.columns if c.key != "id"])
BY_NAME = Prepared(select(USERS).where(USERS.c.username == bindparam("name")).limit(1))


def _values(name: str) -> dict[str, Any]:
    with_defaults = {c.key: None for c in USERS.columns if c.key != "id"}
    return with_defaults | {"project_id": 1, "username": name, "display_name": name, "role": "collector",
                            "active": True, "created_at": datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC),
                            "password_hash": "x", "digest_ha1": "y", "sees_sensitive": False, "language": "zh"}


def test_rows_are_what_core_reads(rt: Any) -> None:
    with rt.db.write() as s:
        INSERT.run(s.connection(), _values("dawa")).close()
    with rt.db.reader() as s:
        conn = s.connection()
        ours = dict(zip(BY_NAME.keys(conn), BY_NAME.rows(conn, {"name": "dawa"})[0], strict=True))
        core = dict(conn.execute(select(USERS).where(USERS.c.username == "dawa")).mappings().one())
    assert ours == core
    assert ours["active"] is True and ours["created_at"] == datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)


def test_driver_errors_are_raised_as_core_raises_them(rt: Any) -> None:
    with rt.db.write() as s:
        INSERT.run(s.connection(), _values("pema")).close()
    with pytest.raises(IntegrityError), rt.db.write() as s:
        INSERT.run(s.connection(), _values("pema"))  # the username is unique
    with pytest.raises(IntegrityError), rt.db.write() as s:
        INSERT.run_many(s.connection(), [_values("norbu"), _values("norbu")])
    with rt.db.reader() as s:
        assert BY_NAME.rows(s.connection(), {"name": "norbu"}) == []  # rolled back


def test_an_unreachable_database_is_core_s_operational_error() -> None:
    """The driver connections of the hot path fail as Engine.connect() fails: OperationalError, which
    app/faults.py answers with a 503 (Collect keeps the form and sends it again)."""
    from sqlalchemy.exc import OperationalError

    from app.db import Database

    db = Database("postgresql+psycopg://nobody:x@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(OperationalError), db.raw_reader():
            pass
        with pytest.raises(OperationalError), db.raw_write():
            pass
    finally:
        db.dispose()
