"""indexes for a national database (bench/scale): region prefixes in any collation, the children list's
search and order, overdue follow-ups

Revision ID: 0018
Revises: 0017
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('entity', schema=None) as batch_op:
        batch_op.create_index('ix_entity_label_id', ['label', 'id'], unique=False)
    if op.get_bind().dialect.name != 'postgresql':
        with op.batch_alter_table('entity', schema=None) as batch_op:
            batch_op.create_index('ix_entity_dataset_uuid_prefix', ['dataset_id', 'uuid'], unique=False)
            batch_op.create_index('ix_entity_label_trgm', ['label'], unique=False)
        return
    # A plain btree serves LIKE 'prefix%' only under the C collation; pattern ops serve it under any.
    op.drop_index('ix_entity_dataset_region', table_name='entity')
    op.create_index('ix_entity_dataset_region', 'entity', ['dataset_id', 'region_code'],
                    postgresql_ops={'region_code': 'varchar_pattern_ops'})
    op.drop_index('ix_submission_region_code', table_name='submission')
    op.create_index('ix_submission_region_code', 'submission', ['region_code'],
                    postgresql_ops={'region_code': 'varchar_pattern_ops'})
    op.create_index('ix_entity_dataset_uuid_prefix', 'entity', ['dataset_id', 'uuid'],
                    postgresql_ops={'uuid': 'varchar_pattern_ops'})
    op.create_index('ix_entity_followup_due', 'entity', ['dataset_id', sa.text("(data ->> 'next_followup_due')")])
    # Trigram search needs the pg_trgm extension (a trusted extension: the database owner may create it).
    # Where it cannot be created, a plain index of the same name (the name search then reads every label).
    bind = op.get_bind()
    nested = bind.begin_nested()
    try:
        bind.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    except sa.exc.DBAPIError:
        nested.rollback()
        op.create_index('ix_entity_label_trgm', 'entity', ['label'])
        return
    nested.commit()
    op.create_index('ix_entity_label_trgm', 'entity', ['label'], postgresql_using='gin',
                    postgresql_ops={'label': 'gin_trgm_ops'})


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        with op.batch_alter_table('entity', schema=None) as batch_op:
            batch_op.drop_index('ix_entity_label_trgm')
            batch_op.drop_index('ix_entity_dataset_uuid_prefix')
    else:
        op.drop_index('ix_entity_label_trgm', table_name='entity')
        op.drop_index('ix_entity_followup_due', table_name='entity')
        op.drop_index('ix_entity_dataset_uuid_prefix', table_name='entity')
        op.drop_index('ix_submission_region_code', table_name='submission')
        op.create_index('ix_submission_region_code', 'submission', ['region_code'])
        op.drop_index('ix_entity_dataset_region', table_name='entity')
        op.create_index('ix_entity_dataset_region', 'entity', ['dataset_id', 'region_code'])
    with op.batch_alter_table('entity', schema=None) as batch_op:
        batch_op.drop_index('ix_entity_label_id')
