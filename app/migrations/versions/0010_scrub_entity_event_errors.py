"""scrub entity_event error texts that held SQL and a child's data

Before this revision an unexpected exception in entity processing was stored as
"internal error: <exception text>", which for database errors holds the SQL statement and its
parameters (a child's name and properties). Those texts are shown on the dashboard; replace
them with the fixed sentence entity processing now writes (app/services/entities.py). The
exception class is not known any more, so it is not named.

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-29 10:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0007'
branch_labels = None
depends_on = None

SCRUBBED = ("internal error: this change was not applied; the submission itself is stored. "
            "(Details were removed from this record.)")


def upgrade() -> None:
    event = sa.table("entity_event", sa.column("code", sa.String), sa.column("message", sa.Text))
    op.execute(event.update().where(event.c.code == "500.1", event.c.message.like("internal error: %"))
               .values(message=SCRUBBED))


def downgrade() -> None:
    pass  # the removed texts are gone for good, as intended
