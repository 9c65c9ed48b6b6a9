"""Publish notes on form versions (Central 2026: `publishNotes`, shown on the versions page)

Revision ID: 0025
Revises: 0027
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0027'  # after the trash (main's head when merged)
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('form_version') as batch:
        batch.add_column(sa.Column('publish_notes', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('form_version') as batch:
        batch.drop_column('publish_notes')
