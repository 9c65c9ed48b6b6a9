"""form_view: the analysts' SQL view names, each owned by one form

Revision ID: 0009
Revises: 0013
Create Date: 2026-11-29 10:50:00

Existing views keep their names: each `form_…` view is registered to the form (and repeat) its
definition reads, as app/services/views.py generated it (`s.form_id = N`, `r.repeat = '…'`).
"""
from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0013'
branch_labels = None
depends_on = None

_FORM = re.compile(r"form_id\s*\)?\s*=\s*\(?\s*(\d+)")
_REPEAT = re.compile(r"repeat\)?(?:::text)?\s*=\s*'((?:[^']|'')*)'")


def upgrade() -> None:
    op.create_table(
        'form_view',
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('form_id', sa.Integer(), nullable=False),
        sa.Column('repeat', sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(['form_id'], ['form.id'], name=op.f('fk_form_view_form_id_form'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_form_view')),
    )
    with op.batch_alter_table('form_view', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_form_view_form_id'), ['form_id'], unique=False)
    _register_existing_views()


def _register_existing_views() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        rows = bind.execute(sa.text("SELECT table_name, view_definition FROM information_schema.views "
                                    "WHERE table_schema = current_schema() AND table_name LIKE 'form%'")).all()
    else:
        rows = bind.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'view' "
                                    "AND name LIKE 'form%'")).all()
    forms = {r[0] for r in bind.execute(sa.text("SELECT id FROM form"))}
    table = sa.table('form_view', sa.column('name', sa.String), sa.column('form_id', sa.Integer),
                     sa.column('repeat', sa.String))
    for name, definition in rows:
        found = _FORM.search(definition or "")
        if not found or int(found.group(1)) not in forms or len(name) > 63:
            continue
        repeat = _REPEAT.search(definition or "")
        op.bulk_insert(table, [{"name": name, "form_id": int(found.group(1)),
                                "repeat": repeat.group(1).replace("''", "'") if repeat else None}])


def downgrade() -> None:
    with op.batch_alter_table('form_view', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_form_view_form_id'))
    op.drop_table('form_view')
