from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, JSONType, UTCDateTime, utcnow

REVIEW_STATES = ("received", "has_issues", "approved", "rejected", "edited")


class Submission(Base):
    """The logical submission: keeps its first instanceID; edits add SubmissionVersion rows."""

    __tablename__ = "submission"
    __table_args__ = (
        UniqueConstraint("form_id", "instance_id"),
        # Keyset pages of a form's submissions (newest first) and the dashboard's weekly counts.
        Index("ix_submission_form_created_id", "form_id", "created_at", "id"),
        Index("ix_submission_created_id", "created_at", "id"),
        # A county's records of a form in that order (exports of one county; migration 0027): the county is
        # the region code's first six digits ('' for none), written as tabular.county_of writes it.
        Index("ix_submission_form_county_created_id", "form_id", text("coalesce(substr(region_code, 1, 6), '')"),
              "created_at", "id"),
        # Region scopes are prefixes (`LIKE '5402%'`): pattern ops let PostgreSQL use the index in any collation.
        Index("ix_submission_region_code", "region_code", postgresql_ops={"region_code": "varchar_pattern_ops"}),
        # The trash: a form's deleted records, and the purge of those deleted more than 30 days ago.
        Index("ix_submission_deleted_at", "deleted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id"))
    instance_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitter_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    device_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    region_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    # The child (entity) this record is about: the id in its meta/entity block, if any.
    entity_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    review_state: Mapped[str] = mapped_column(String(20), default="received", index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("submission_version.id", use_alter=True, ondelete="SET NULL"), nullable=True
    )

    current_version: Mapped[SubmissionVersion | None] = relationship(
        foreign_keys=[current_version_id], post_update=True
    )


class SubmissionVersion(Base):
    """One XML document received for a submission (the first one, or an edit)."""

    __tablename__ = "submission_version"
    __table_args__ = (UniqueConstraint("form_id", "instance_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"), index=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id"))
    form_version_id: Mapped[int] = mapped_column(ForeignKey("form_version.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(255))
    deprecated_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    instance_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    xml_sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitter_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Encrypted submissions (ODK form encryption): the name of the attachment holding the encrypted
    # instance XML (the manifest's encryptedXmlFile); `xml` is then the plaintext manifest.
    encrypted_file: Mapped[str | None] = mapped_column(String(300), nullable=True)

    repeat_rows: Mapped[list[SubmissionRepeatRow]] = relationship(
        cascade="all, delete-orphan", order_by="SubmissionRepeatRow.id", lazy="selectin",
        foreign_keys="SubmissionRepeatRow.version_id",
    )
    attachments: Mapped[list[SubmissionAttachment]] = relationship(
        cascade="all, delete-orphan", order_by="SubmissionAttachment.name", lazy="selectin"
    )


class SubmissionRepeatRow(Base):
    __tablename__ = "submission_repeat_row"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("submission_version.id", ondelete="CASCADE"), index=True)
    repeat: Mapped[str] = mapped_column(String(500))
    ordinal: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("submission_repeat_row.id", ondelete="CASCADE"), nullable=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)

    parent: Mapped[SubmissionRepeatRow | None] = relationship(remote_side=[id], foreign_keys=[parent_id])


class SubmissionAttachment(Base):
    """A file the submission XML references; blob_key is None until the file has arrived."""

    __tablename__ = "submission_attachment"
    __table_args__ = (UniqueConstraint("version_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("submission_version.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    blob_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(120), nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
