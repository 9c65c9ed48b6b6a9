"""dashboard figures per region code (carefile dashboard refresh)

Revision ID: 0017
Revises: 0016
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.models.base

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'dashboard_rollup',
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('region_code', sa.String(length=12), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('computed_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('body', sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql'), nullable=False),
        sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_dashboard_rollup_project_id_project'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('project_id', 'region_code', name=op.f('pk_dashboard_rollup')),
    )


def downgrade() -> None:
    op.drop_table('dashboard_rollup')
