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


def upgrade() -> None:
    with op.batch_alter_table('form_version') as batch:
        batch.add_column(sa.Column('publish_notes', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('form_version') as batch:
        batch.drop_column('publish_notes')
