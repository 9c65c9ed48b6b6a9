"""Secrets at rest: API session tokens, web session ids, collector tokens and draft test tokens are stored
as their SHA-256; collector and draft test tokens also sealed under the server's secret key, so their QR
codes can be shown again (app/services/identity/tokens.py).

Existing rows are hashed in place, so phones, API clients and browsers signed in before keep working. The
secret key reaches the migration from `carefile init`/`serve` (app.migrate.upgrade(secret_key=…)); run
without it, existing collector and draft tokens are only hashed: phones keep working, and their QR code is
shown again only after it is renewed.

Revision ID: 0023
Revises: 0022
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from app.services.identity import tokens

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

# The purposes the services seal under (identity/users.py TOKEN_PURPOSE, forms/drafts.py DRAFT_TOKEN_PURPOSE).
COLLECTOR = "collector-token"
DRAFT = "draft-test-token"


def _key() -> str | None:
    key = context.config.attributes.get("secret_key")
    return str(key) if key else None


def upgrade() -> None:
    with op.batch_alter_table('collector_token') as batch:
        batch.add_column(sa.Column('sealed', sa.String(length=200), nullable=True))
    with op.batch_alter_table('form_draft') as batch:
        batch.add_column(sa.Column('token_sealed', sa.String(length=200), nullable=True))
    conn = op.get_bind()
    key = _key()
    for table, column in (('api_session', 'token'), ('web_session', 'id')):
        for (value,) in conn.execute(sa.text(f"SELECT {column} FROM {table}")).all():
            conn.execute(sa.text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"),
                         {"new": tokens.digest(value), "old": value})
    for table, sealed, purpose in (('collector_token', 'sealed', COLLECTOR), ('form_draft', 'token_sealed', DRAFT)):
        for row_id, value in conn.execute(sa.text(f"SELECT id, token FROM {table}")).all():
            conn.execute(sa.text(f"UPDATE {table} SET token = :new, {sealed} = :sealed WHERE id = :id"),
                         {"new": tokens.digest(value), "id": row_id,
                          "sealed": tokens.seal(key, purpose, value) if key else None})


def downgrade() -> None:
    # Digests cannot be turned back into tokens: sessions end (everyone signs in again); collector and draft
    # tokens come back from their sealed copy when the secret key is known, else they stop working.
    conn = op.get_bind()
    key = _key()
    conn.execute(sa.text("DELETE FROM api_session"))
    conn.execute(sa.text("DELETE FROM web_session"))
    for table, sealed, purpose in (('collector_token', 'sealed', COLLECTOR), ('form_draft', 'token_sealed', DRAFT)):
        if key:
            for row_id, value in conn.execute(sa.text(f"SELECT id, {sealed} FROM {table}")).all():
                token = tokens.unseal(key, purpose, value)
                if token is not None:
                    conn.execute(sa.text(f"UPDATE {table} SET token = :token WHERE id = :id"),
                                 {"token": token, "id": row_id})
    with op.batch_alter_table('form_draft') as batch:
        batch.drop_column('token_sealed')
    with op.batch_alter_table('collector_token') as batch:
        batch.drop_column('sealed')
