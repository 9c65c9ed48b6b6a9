from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONType, UTCDateTime, utcnow


class AuditEvent(Base):
    """Who did what, when, from where: sign-ins, publishing, child-file views, exports, user changes."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_action_at", "action", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True,
                                                index=True)
    username: Mapped[str] = mapped_column(String(150), default="")  # kept if the user is deleted
    action: Mapped[str] = mapped_column(String(60))  # e.g. login.ok, login.failed, form.publish, child.view
    target: Mapped[str] = mapped_column(String(300), default="")  # e.g. form:assessment, child:<uuid>
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    ip: Mapped[str] = mapped_column(String(64), default="")


class LoginFailure(Base):
    """A wrong password (any channel: web, API session, Digest, Basic), for throttling (services.signin);
    shared by every worker and node."""

    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SigninKnownAddress(Base):
    """A client address the account signed in from with the right password (services.signin): a storm
    of wrong passwords against the account from elsewhere does not lock the rightful user out here."""

    __tablename__ = "signin_known_address"

    username: Mapped[str] = mapped_column(String(150), primary_key=True)
    ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_ok_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SubmissionComment(Base):
    __tablename__ = "submission_comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    review_state: Mapped[str | None] = mapped_column(String(20), nullable=True)  # state set with the comment
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExportJob(Base):
    """A background export: its file goes to the blob store and downloads with HTTP Range."""

    __tablename__ = "export_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True,
                                                index=True)
    form_id: Mapped[int | None] = mapped_column(ForeignKey("form.id", ondelete="CASCADE"), nullable=True)
    kind: Mapped[str] = mapped_column(String(20))  # csvzip | xlsx | json | childzip
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)  # queued|running|done|failed
    progress: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    blob_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    filename: Mapped[str] = mapped_column(String(300), default="")
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String(100), default="")  # pid@host of the worker running it
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # while running
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # claims so far
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
