"""encrypted forms: encrypted submissions and managed keys

Revision ID: 0011
Revises: 0006
Create Date: 2026-11-29 10:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.models.base

revision = '0011'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'managed_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('form_id', sa.Integer(), nullable=True),
        sa.Column('public_key', sa.Text(), nullable=False),
        sa.Column('private_key', sa.LargeBinary(), nullable=False),
        sa.Column('nonce', sa.LargeBinary(), nullable=False),
        sa.Column('kdf', sa.String(length=20), nullable=False),
        sa.Column('kdf_salt', sa.LargeBinary(), nullable=False),
        sa.Column('kdf_n', sa.Integer(), nullable=False),
        sa.Column('kdf_r', sa.Integer(), nullable=False),
        sa.Column('kdf_p', sa.Integer(), nullable=False),
        sa.Column('hint', sa.String(length=500), nullable=False),
        sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['form_id'], ['form.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['project_id'], ['project.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('project_id', 'form_id'),
    )
    with op.batch_alter_table('submission_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('encrypted_file', sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('submission_version', schema=None) as batch_op:
        batch_op.drop_column('encrypted_file')
    op.drop_table('managed_key')
