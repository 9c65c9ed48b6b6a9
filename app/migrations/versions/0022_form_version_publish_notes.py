"""Publish notes on form versions (Central 2026: `publishNotes`, shown on the versions page)

Revision ID: 0022
Revises: 0021
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases (SQLite has had DROP COLUMN since 3.35): a batch operation would copy
# and drop form_version, which the foreign keys of other tables refuse.
def upgrade() -> None:
    op.add_column('form_version', sa.Column('publish_notes', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('form_version', 'publish_notes')
