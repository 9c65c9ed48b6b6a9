"""regions.csv is made by the server for each user: attachments of that name get the kind 'regions'

Forms published from the website never had the file; forms published by `carefile init` had the province's
whole table uploaded, which phones received whole after `carefile regions load` changed the table. Now the
server makes the file from the current division table, with only the places of the user's regions.

Revision ID: 0020
Revises: 0019
"""
from __future__ import annotations

from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('form_attachment', 'form_draft_attachment'):
        op.execute(f"UPDATE {table} SET kind = 'regions' WHERE filename = 'regions.csv' AND dataset IS NULL")


def downgrade() -> None:
    for table in ('form_attachment', 'form_draft_attachment'):
        op.execute(f"UPDATE {table} SET kind = 'csv' WHERE kind = 'regions'")
