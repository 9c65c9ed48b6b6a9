"""a list's revision also counted on a few rows, and (PostgreSQL) an update of a list's row only under its lock

The plain entity change of a new record (app/services/children/lean.py) counted the list's revision (the
phones' CSV cache key) on the list's own row: every registration and visit of a list queued on that row from
its lock to its COMMIT, which cost them about a fifth more CPU than their own work under load (bench/ingest).
On PostgreSQL such a change now shares the list's advisory lock and counts one of a few rows of
`dataset_revision`; every other change of the list takes the advisory lock exclusively
(app.services.children.store.lock_dataset) and still counts `dataset.revision`. The list's revision is the
sum (store.list_revision); existing lists start with no counters, so their revision is unchanged.

PostgreSQL: a trigger refuses an update of a `dataset` row by a transaction that does not hold that list's
exclusive advisory lock, so that a change made without the lock fails instead of running beside a plain
change. The lock's numbers are app.services.children.store.LIST_LOCK and LIST_KEY_SQL (written out here:
a migration keeps the values of its day).

Revision ID: 0029
Revises: 0028
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None

_GUARD = """
CREATE OR REPLACE FUNCTION carefile_dataset_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND mode = 'ExclusiveLock'
          AND objsubid = 2 AND classid = CAST(1128680531 AS oid)
          AND objid = CAST(hashtext(CAST(OLD.project_id AS TEXT) || '/' || CAST(OLD.name AS TEXT)) AS oid)
    ) THEN
        RAISE EXCEPTION USING MESSAGE = 'entity list ' || OLD.id
            || ' changed without its lock (app.services.children.store.lock_dataset)';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER dataset_locked BEFORE UPDATE ON dataset FOR EACH ROW EXECUTE FUNCTION carefile_dataset_locked();
"""


def upgrade() -> None:
    op.create_table(
        'dataset_revision',
        sa.Column('dataset_id', sa.Integer(), nullable=False),
        sa.Column('slot', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], name=op.f('fk_dataset_revision_dataset_id_dataset'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('dataset_id', 'slot', name=op.f('pk_dataset_revision')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.get_bind().exec_driver_sql(_GUARD)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.get_bind().exec_driver_sql('DROP TRIGGER IF EXISTS dataset_locked ON dataset')
        op.get_bind().exec_driver_sql('DROP FUNCTION IF EXISTS carefile_dataset_locked()')
    # The plain changes' counts go into the list's own counter, so the list's revision stays what it was.
    op.get_bind().exec_driver_sql(
        'UPDATE dataset SET revision = revision + (SELECT coalesce(sum(n), 0) FROM dataset_revision '
        'WHERE dataset_revision.dataset_id = dataset.id)')
    op.drop_table('dataset_revision')
