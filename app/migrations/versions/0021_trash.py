"""The trash: indexes for deleted entities and submissions, and the ids of purged entities

Entities and submissions deleted through the API or the website stay in the trash (deleted_at set) for 30
days, then `carefile purge` removes them. A purged entity's id is kept in purged_entity: it may not be used
again, and Collect's integrity check reports it deleted.

Revision ID: 0021
Revises: 0020
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.models.base

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'purged_entity',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('uuid', sa.String(length=36), nullable=False),
        sa.Column('purged_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], name=op.f('fk_purged_entity_dataset_id_dataset'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_purged_entity')),
        sa.UniqueConstraint('dataset_id', 'uuid', name=op.f('uq_purged_entity_dataset_id_uuid')),
    )
    op.create_index('ix_entity_deleted_at', 'entity', ['deleted_at'])
    op.create_index('ix_submission_deleted_at', 'submission', ['deleted_at'])


def downgrade() -> None:
    op.drop_index('ix_submission_deleted_at', table_name='submission')
    op.drop_index('ix_entity_deleted_at', table_name='entity')
    op.drop_table('purged_entity')
