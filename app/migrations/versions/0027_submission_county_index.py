"""a county's records of a form in the order received, without walking the other counties' records

An export of one county (a county manager's, or anyone's with a region filter of six or more digits) read
the form's (form_id, created_at, id) index and rejected the rows of every other county: at 1,000,000
children, ~8,000 rows of other counties per 1,000 exported (bench/scale). This index holds the county (the
region code's first six digits, '' for a record without a region code) after the form; the export adds the matching condition
(app/services/exports/tabular.py), and after `carefile cluster` (the same order) the walk reads
consecutive table pages. Both databases (SQLite uses an expression index when the query's expression is
the same text). ANALYZE on PostgreSQL gives the planner the expression's statistics.

Revision ID: 0027
Revises: 0026
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_submission_form_county_created_id', 'submission',
                    ['form_id', sa.text("coalesce(substr(region_code, 1, 6), '')"), 'created_at', 'id'])
    if op.get_bind().dialect.name == 'postgresql':
        op.get_bind().exec_driver_sql('ANALYZE submission')


def downgrade() -> None:
    op.drop_index('ix_submission_form_county_created_id', table_name='submission')
