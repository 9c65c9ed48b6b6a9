"""case work: merged duplicates, closure, retention; duplicate candidates; server-side entity versions

Revision ID: 0016
Revises: 0012
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.models.base

revision = '0016'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('entity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_into', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('closed_at', app.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('close_reason', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('anonymised_at', app.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_entity_merged_into'), ['merged_into'], unique=False)
    with op.batch_alter_table('entity_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('action', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('actor_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_entity_version_actor_id_user_account'), 'user_account',
                                    ['actor_id'], ['id'], ondelete='SET NULL')
    op.create_table(
        'duplicate_candidate',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('entity_a_id', sa.Integer(), nullable=False),
        sa.Column('entity_b_id', sa.Integer(), nullable=False),
        sa.Column('reasons', sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), 'postgresql'), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('decided_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], name=op.f('fk_duplicate_candidate_dataset_id_dataset'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['entity_a_id'], ['entity.id'], name=op.f('fk_duplicate_candidate_entity_a_id_entity'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['entity_b_id'], ['entity.id'], name=op.f('fk_duplicate_candidate_entity_b_id_entity'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['decided_by'], ['user_account.id'],
                                name=op.f('fk_duplicate_candidate_decided_by_user_account'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_duplicate_candidate')),
        sa.UniqueConstraint('entity_a_id', 'entity_b_id', name=op.f('uq_duplicate_candidate_entity_a_id_entity_b_id')),
    )
    with op.batch_alter_table('duplicate_candidate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duplicate_candidate_dataset_id'), ['dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_duplicate_candidate_entity_a_id'), ['entity_a_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_duplicate_candidate_entity_b_id'), ['entity_b_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_duplicate_candidate_status'), ['status'], unique=False)


def downgrade() -> None:
    op.drop_table('duplicate_candidate')
    with op.batch_alter_table('entity_version', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_entity_version_actor_id_user_account'), type_='foreignkey')
        batch_op.drop_column('note')
        batch_op.drop_column('actor_id')
        batch_op.drop_column('action')
    with op.batch_alter_table('entity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entity_merged_into'))
        batch_op.drop_column('anonymised_at')
        batch_op.drop_column('close_reason')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('merged_into')
