"""the children list's name search without reading thousands of rows: trigrams of the squeezed label

A label is made of one-letter words between punctuation (扎*（女，2015-03，…村）); pg_trgm makes trigrams of
each word's letters and digits only, so searching a piece of a label through ix_entity_label_trgm found
every label with the same one-letter words and read all of them (30,000 rows for 1,443 answers at 1,000,000
children: 3.2 s on a cold cache, bench/scale). This index holds the trigrams of the label with everything
but letters and digits taken out (app.models.entity.squeezed), which span the words. PostgreSQL only, and
only where pg_trgm exists (migration 0018 created it where the database allowed); elsewhere the search
works as before.

Revision ID: 0025
Revises: 0024
"""
from __future__ import annotations

from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

SQUEEZED = "regexp_replace(label, '[^[:alnum:]]+', '', 'g')"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    if bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").first() is None:
        return
    bind.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS ix_entity_label_squeezed_trgm ON entity '
                         f'USING gin ({SQUEEZED} gin_trgm_ops)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.get_bind().exec_driver_sql('DROP INDEX IF EXISTS ix_entity_label_squeezed_trgm')
