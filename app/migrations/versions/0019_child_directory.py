"""child_directory: what identifies a child (full name, guardian, ID number, pinyin), for finding children

Rows are filled by the application (app/services/children/directory.py): for new registrations as they
arrive, and for children registered before this migration by `carefile init` / the first start
(app.services.ops.setup.init_schema fills the rows that are missing).

Revision ID: 0019
Revises: 0018
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.models.base

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'child_directory',
        sa.Column('entity_id', sa.Integer(), nullable=False),
        sa.Column('full_name', sa.Text(), nullable=True),
        sa.Column('guardian_name', sa.Text(), nullable=True),
        sa.Column('id_number', sa.String(length=40), nullable=True),
        sa.Column('search_text', sa.Text(), nullable=False),
        sa.Column('submission_id', sa.Integer(), nullable=True),
        sa.Column('updated_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['entity_id'], ['entity.id'], name=op.f('fk_child_directory_entity_id_entity'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['submission_id'], ['submission.id'],
                                name=op.f('fk_child_directory_submission_id_submission'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('entity_id', name=op.f('pk_child_directory')),
    )
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        trgm = bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").first()
        if trgm is not None:  # migration 0018 created it where the database allowed
            op.create_index('ix_child_directory_search_trgm', 'child_directory', ['search_text'],
                            postgresql_using='gin', postgresql_ops={'search_text': 'gin_trgm_ops'})
            return
    op.create_index('ix_child_directory_search_trgm', 'child_directory', ['search_text'])


def downgrade() -> None:
    op.drop_index('ix_child_directory_search_trgm', table_name='child_directory')
    op.drop_table('child_directory')
