"""drop ix_entity_label_trgm: no query reads it, and every new child's row paid for it

The children list's name search reads the squeezed label's trigram index (migration 0025) and tests the
label itself with strpos, which no index serves; nothing else searches inside labels. The label's own index
(a GIN of its trigrams on PostgreSQL, a btree on `label` elsewhere, which ix_entity_label_id already leads
with) was still written on every registration and label change: on PostgreSQL a second GIN insertion per new
child (bench/ingest `--kinds register`).

Revision ID: 0028
Revises: 0027
"""
from __future__ import annotations

from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.get_bind().exec_driver_sql('DROP INDEX IF EXISTS ix_entity_label_trgm')


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql' and bind.exec_driver_sql(
            "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").first() is not None:
        op.create_index('ix_entity_label_trgm', 'entity', ['label'], postgresql_using='gin',
                        postgresql_ops={'label': 'gin_trgm_ops'})
    else:
        op.create_index('ix_entity_label_trgm', 'entity', ['label'])
