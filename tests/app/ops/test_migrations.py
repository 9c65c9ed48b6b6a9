"""The Alembic migrations create exactly the schema the models describe."""
from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.models import Base

# SQLite cannot reflect expression indexes; the one the models declare (ix_entity_followup_due) is made on
# PostgreSQL only, where it is compared.
SKIPPED_EXPRESSION_INDEX = "ignore:autogenerate skipping metadata-specified expression-based index:UserWarning"
# ... nor reflect uq_user_account_username_lower (lower(username), migration 0024) there.
UNREFLECTED_INDEX = "ignore:Skipped unsupported reflection of expression-based index"


@pytest.mark.filterwarnings(SKIPPED_EXPRESSION_INDEX)
@pytest.mark.filterwarnings(UNREFLECTED_INDEX)
def test_migrations_match_models(rt: Any) -> None:
    with rt.db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


@pytest.mark.filterwarnings(SKIPPED_EXPRESSION_INDEX)
@pytest.mark.filterwarnings(UNREFLECTED_INDEX)
def test_downgrade_and_upgrade_again(rt: Any) -> None:
    from alembic import command

    from app.migrate import alembic_config, upgrade

    cfg = alembic_config(rt.db.engine.url.render_as_string(hide_password=False))
    with rt.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    upgrade(rt.db.engine)
    with rt.db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


def test_first_start_lock_on_sqlite_makes_a_second_server_wait(tmp_path: Any) -> None:
    """Two `carefile serve` on one machine and one SQLite file: the second waits while the first publishes."""
    import time

    from sqlalchemy import create_engine

    from app.migrate import first_start_lock
    from tests.support.locks import flock_held_elsewhere

    engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with flock_held_elsewhere(str(tmp_path / "c.db") + "-first-start.lock"):
            started = time.monotonic()
            with first_start_lock(engine):
                assert time.monotonic() - started >= 0.3
        with first_start_lock(engine):  # released: taken again at once
            pass
    finally:
        engine.dispose()
