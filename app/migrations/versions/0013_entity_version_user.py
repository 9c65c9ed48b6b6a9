"""entity versions made through the API: who made them

Revision ID: 0013
Revises: 0008
Create Date: 2026-11-29 10:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('entity_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_entity_version_user_id_user_account', 'user_account', ['user_id'], ['id'],
                                    ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('entity_version', schema=None) as batch_op:
        batch_op.drop_constraint('fk_entity_version_user_id_user_account', type_='foreignkey')
        batch_op.drop_column('user_id')
