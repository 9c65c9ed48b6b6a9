"""access policy: managers' sensitive-data grant, changes held for review

Revision ID: 0007
Revises: 0011
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.models.base

revision = "0007"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sees_sensitive", sa.Boolean(), server_default="0", nullable=False))
    op.create_table(
        "held_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("project.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("submission_id", sa.Integer(), sa.ForeignKey("submission.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("submission_version.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("regions", app.models.base.JSONType, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("submitter_id", sa.Integer(), sa.ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), sa.ForeignKey("user_account.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("decided_at", app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("details", app.models.base.JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_held_change_project_status", "held_change", ["project_id", "status"])
    op.create_index("ix_held_change_submission_id", "held_change", ["submission_id"])
    op.create_index("ix_held_change_version_id", "held_change", ["version_id"])


def downgrade() -> None:
    op.drop_table("held_change")
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_column("sees_sensitive")
