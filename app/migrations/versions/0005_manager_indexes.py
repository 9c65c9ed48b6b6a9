"""manager pages: keyset index on submissions by form and (created_at, id), weekly counts

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_index("ix_submission_form_received")
        batch_op.create_index("ix_submission_form_created_id", ["form_id", "created_at", "id"], unique=False)
        batch_op.create_index("ix_submission_created_id", ["created_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_index("ix_submission_created_id")
        batch_op.drop_index("ix_submission_form_created_id")
        batch_op.create_index("ix_submission_form_received", ["form_id", "created_at"], unique=False)
