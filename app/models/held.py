from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONType, UTCDateTime, utcnow

HELD_KINDS = ("entity", "edit")
HELD_STATES = ("pending", "applied", "rejected")


class HeldChange(Base):
    """An effect of a submission outside its submitter's regions, held until a coordinator decides.

    kind "entity": the entity create/update of the version (its EntityEvent has status "held");
    kind "edit": the version edits (deprecatedID) a record outside the submitter's regions; it is
    stored, not current, until applied.
    """

    __tablename__ = "held_change"
    __table_args__ = (Index("ix_held_change_project_status", "project_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    kind: Mapped[str] = mapped_column(String(20))
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("submission_version.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")  # child uuid or the edited instanceID
    # Every region the change touches (the record's and, for a move, the new one): a coordinator
    # decides only when all lie in their scope.
    regions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    reason: Mapped[str] = mapped_column(Text, default="")
    submitter_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"),
                                                      nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
