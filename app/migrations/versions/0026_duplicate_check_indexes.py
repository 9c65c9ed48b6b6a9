"""the duplicate check of a new child in two indexed lookups, whatever the number of children

A registration compared the new child with the province's children born within a month (every child's JSON
read: the province prefix covers all of Tibet) and looked its ID number up in every registration's answers;
the cost grew with the care file (bench/ingest/growth.py: 117 ms of CPU per registration at 30,000 children on
SQLite). Now the ID number is looked up in child_directory (this index) and the birth dates through an
expression index (`data ->> 'birth_date'` on PostgreSQL, `json_extract(data, '$.birth_date')` on SQLite).

Revision ID: 0026
Revises: 0025
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_child_directory_id_number', 'child_directory', ['id_number'])
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_entity_birth_date', 'entity', ['dataset_id', sa.text("(data ->> 'birth_date')")])
    else:
        op.create_index('ix_entity_birth_date_sqlite', 'entity',
                        ['dataset_id', sa.text("json_extract(data, '$.birth_date')")])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_entity_birth_date', table_name='entity')
    else:
        op.drop_index('ix_entity_birth_date_sqlite', table_name='entity')
    op.drop_index('ix_child_directory_id_number', table_name='child_directory')
