from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, JSONType, UTCDateTime, utcnow

FORM_STATES = ("open", "closing", "closed")
# A file the server makes for each user instead of one uploaded: regions.csv, the places of the user's regions
# (app.services.forms.files); an entity list (children.csv) is marked by `dataset` instead.
GENERATED_KINDS = ("regions",)


class AttachmentColumns:
    """What a published version's file and a draft's file record alike: name, kind, the entity list it is
    made from (dataset), or the uploaded blob."""

    filename: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))
    dataset: Mapped[str | None] = mapped_column(String(100), nullable=True)
    blob_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(120), nullable=True)
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def generated(self) -> bool:
        """Made by the server for each user (an entity list, regions.csv), never uploaded."""
        return self.dataset is not None or self.kind in GENERATED_KINDS

    @property
    def present(self) -> bool:
        return self.blob_key is not None or self.generated


class Form(Base):
    __tablename__ = "form"
    __table_args__ = (UniqueConstraint("project_id", "xml_form_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    xml_form_id: Mapped[str] = mapped_column(String(250))
    state: Mapped[str] = mapped_column(String(10), default="open")
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("form_version.id", use_alter=True, ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    current_version: Mapped[FormVersion | None] = relationship(
        foreign_keys=[current_version_id], post_update=True, lazy="joined"
    )


class FormVersion(Base):
    __tablename__ = "form_version"
    __table_args__ = (UniqueConstraint("form_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(250))
    title: Mapped[str] = mapped_column(String(500))
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    md5: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    schema: Mapped[dict[str, Any]] = mapped_column(JSONType)
    source_filename: Mapped[str | None] = mapped_column(String(300), nullable=True)
    source_blob_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    warnings: Mapped[list[str]] = mapped_column(JSONType, default=list)
    validation_note: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True
    )
    publish_notes: Mapped[str | None] = mapped_column(Text, nullable=True)  # what changed, said at publish

    attachments: Mapped[list[FormAttachment]] = relationship(
        back_populates="form_version", cascade="all, delete-orphan", lazy="selectin",
        order_by="FormAttachment.filename",
    )


class FormAttachment(AttachmentColumns, Base):
    """A media or data file a form version references (jr://images/x.png, jr://file-csv/y.csv)."""

    __tablename__ = "form_attachment"
    __table_args__ = (UniqueConstraint("form_version_id", "filename"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_version_id: Mapped[int] = mapped_column(ForeignKey("form_version.id", ondelete="CASCADE"))

    form_version: Mapped[FormVersion] = relationship(back_populates="attachments")


class FormView(Base):
    """An analysts' SQL view (app/services/views.py) and the form and repeat it shows. A name is given
    to one form once and kept, so publishing one form never replaces another form's view."""

    __tablename__ = "form_view"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id", ondelete="CASCADE"), index=True)
    repeat: Mapped[str | None] = mapped_column(String(1000), nullable=True)  # None: the main view


class FormDraft(Base):
    """The next version of a form, not yet on phones: tried through its test token URL, then
    published (it becomes a FormVersion) or abandoned. At most one draft per form."""

    __tablename__ = "form_draft"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("form.id", ondelete="CASCADE"), unique=True)
    version: Mapped[str] = mapped_column(String(250))
    title: Mapped[str] = mapped_column(String(500))
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    md5: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    schema: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # True when the XLSForm had no `version`: publishing stamps one (or takes the one asked for).
    version_stamped: Mapped[bool] = mapped_column(Boolean, default=False)
    source_filename: Mapped[str | None] = mapped_column(String(300), nullable=True)
    source_blob_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    warnings: Mapped[list[str]] = mapped_column(JSONType, default=list)
    validation_note: Mapped[str] = mapped_column(Text, default="")
    # Secret of the test URL /v1/test/<token>/projects/<p>/forms/<f>/draft (no sign-in): its SHA-256, and
    # the token sealed under the server's secret key to show the URL again (identity/tokens.py).
    token_hash: Mapped[str] = mapped_column("token", String(64), unique=True)
    token_sealed: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True
    )

    form: Mapped[Form] = relationship()
    attachments: Mapped[list[FormDraftAttachment]] = relationship(
        back_populates="draft", cascade="all, delete-orphan", lazy="selectin",
        order_by="FormDraftAttachment.filename",
    )
    test_submissions: Mapped[list[DraftSubmission]] = relationship(
        cascade="all, delete-orphan", lazy="select", order_by="DraftSubmission.id", passive_deletes=True,
    )


class FormDraftAttachment(AttachmentColumns, Base):
    """A media or data file the draft references; copied to the version when the draft is published."""

    __tablename__ = "form_draft_attachment"
    __table_args__ = (UniqueConstraint("draft_id", "filename"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("form_draft.id", ondelete="CASCADE"))

    draft: Mapped[FormDraft] = relationship(back_populates="attachments")


class DraftSubmission(Base):
    """A test submission sent to a draft. Kept apart from real submissions (its own table: never in
    lists, exports, entity lists or the child file) and deleted with the draft."""

    __tablename__ = "draft_submission"
    __table_args__ = (UniqueConstraint("draft_id", "instance_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("form_draft.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[str] = mapped_column(String(255))
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)

    files: Mapped[list[DraftSubmissionFile]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="DraftSubmissionFile.name", passive_deletes=True,
    )


class DraftSubmissionFile(Base):
    """A file (photo, signature …) of a test submission; blob_key is None until it has arrived."""

    __tablename__ = "draft_submission_file"
    __table_args__ = (UniqueConstraint("submission_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("draft_submission.id", ondelete="CASCADE"),
                                               index=True)
    name: Mapped[str] = mapped_column(String(300))
    blob_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(120), nullable=True)
