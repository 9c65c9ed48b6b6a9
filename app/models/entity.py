from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONType, UTCDateTime, utcnow


class Dataset(Base):
    """An entity list (e.g. `children`): declared by forms, filled by their submissions."""

    __tablename__ = "dataset"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    name: Mapped[str] = mapped_column(String(100))
    properties: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Counts up on every change of any entity made under the list's exclusive lock: with the counters of
    # DatasetRevision, the list's revision (app.services.children.store.list_revision), part of the cache key
    # of the served CSVs.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetRevision(Base):
    """One of a list's revision counters: a plain entity change on PostgreSQL (app/services/children/lean.py)
    counts one of a few slots, chosen at random, instead of the list's row, so that changes of different
    children do not wait for each other's commit. The list's revision is Dataset.revision plus the slots'
    sum (each commit raises it by one at least, as the single counter did)."""

    __tablename__ = "dataset_revision"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class Entity(Base):
    __tablename__ = "entity"
    __table_args__ = (
        UniqueConstraint("dataset_id", "uuid"),
        # varchar_pattern_ops: PostgreSQL serves `region_code LIKE '5402%'` (every region scope) from the
        # index whatever the database's collation (with C.UTF-8, en_US … a plain btree cannot).
        Index("ix_entity_dataset_region", "dataset_id", "region_code",
              postgresql_ops={"region_code": "varchar_pattern_ops"}),
        # The children list: the pseudonym search (uuid prefix) and pages in name order (bench/scale).
        Index("ix_entity_dataset_uuid_prefix", "dataset_id", "uuid", postgresql_ops={"uuid": "varchar_pattern_ops"}),
        Index("ix_entity_label_id", "label", "id"),  # not after dataset_id: the list joins the dataset by name
        # (The name search reads the squeezed label's trigrams, declared below; migration 0028 dropped the
        # label's own trigram index, which nothing read.)
        Index("ix_entity_deleted_at", "deleted_at"),  # the trash and its purge
        # The overdue follow-ups (PostgreSQL only).
        Index("ix_entity_followup_due", "dataset_id", text("(data ->> 'next_followup_due')")
              ).ddl_if(dialect="postgresql"),
        # The duplicate check of a new child: the list's children born within a month (the expression as
        # app/services/children/duplicates.py writes it). On SQLite migration 0026 makes the same index on
        # json_extract(data, '$.birth_date'), not declared here: Alembic compares SQLite's expression indexes
        # nowhere, and would miss a SQLite-only one on PostgreSQL.
        Index("ix_entity_birth_date", "dataset_id", text("(data ->> 'birth_date')")).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    uuid: Mapped[str] = mapped_column(String(36))
    label: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    region_code: Mapped[str | None] = mapped_column(String(12), nullable=True)
    # None, or "soft"/"hard" when offline updates were applied out of step (needs review).
    conflict: Mapped[str | None] = mapped_column(String(10), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Case work (app/services/casework.py): a merged duplicate points at its survivor; a closed
    # case leaves phones (closed_at, close_reason); retention anonymises it years later.
    merged_into: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    close_reason: Mapped[str | None] = mapped_column(String(30), nullable=True)
    anonymised_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


def squeezed(value: Any) -> ColumnElement[str]:
    """A text with everything but letters and digits taken out (扎*（女，2015-03，…村） → 扎女201503…村), in SQL
    (PostgreSQL). pg_trgm makes trigrams of the letters and digits of each word only, and a label is made of
    one-letter words between punctuation, so a piece of a label (扎*（女，2015) shares its trigrams with
    thousands of labels; squeezed, the piece's trigrams span its words and find little more than the labels
    that contain it. Removing characters keeps a piece a piece: a label that contains the typed text also
    contains the squeezed text in its squeezed form (the index below serves that necessary condition)."""
    return func.regexp_replace(value, literal_column("'[^[:alnum:]]+'"), literal_column("''"), literal_column("'g'"))


class ChildDirectory(Base):
    """What identifies a child, from the registration record, for finding and telling children apart.

    One row per entity of the list (app/services/children/directory.py keeps it): the full name, the guardian
    and the ID number as answered on the registration (sensitive answers: only users entitled to identifying
    details ever search or see them), and `search_text` — those values with the name's toneless pinyin and
    initials, lower-case, joined by " | " — which the children list searches with one LIKE."""

    __tablename__ = "child_directory"
    __table_args__ = (
        Index("ix_child_directory_search_trgm", "search_text", postgresql_using="gin",
              postgresql_ops={"search_text": "gin_trgm_ops"}),
        Index("ix_child_directory_id_number", "id_number"),  # the duplicate check: the same ID number
    )

    entity_id: Mapped[int] = mapped_column(ForeignKey("entity.id", ondelete="CASCADE"), primary_key=True)
    full_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    guardian_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    id_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    search_text: Mapped[str] = mapped_column(Text, default="")
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id", ondelete="SET NULL"),
                                                      nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The squeezed label's trigrams (see squeezed; PostgreSQL only, and only where pg_trgm exists: migration 0025).
Index("ix_entity_label_squeezed_trgm", squeezed(Entity.label).label("label_squeezed"), postgresql_using="gin",
      postgresql_ops={"label_squeezed": "gin_trgm_ops"}).ddl_if(dialect="postgresql")


class EntityVersion(Base):
    """The entity's history: what each submission changed, and when."""

    __tablename__ = "entity_version"
    __table_args__ = (UniqueConstraint("entity_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("entity.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)  # all properties after this version
    data_received: Mapped[dict[str, Any]] = mapped_column(JSONType)  # what the submission sent
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submission.id", ondelete="SET NULL"),
                                                      nullable=True, index=True)
    submission_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("submission_version.id", ondelete="SET NULL"), nullable=True)
    # Versions made through the API (no submission): the user who made them.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)
    base_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trunk_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    branch_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    branch_base_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    conflict: Mapped[str | None] = mapped_column(String(10), nullable=True)
    conflicting_properties: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Versions written on the server without a submission (move, close, reopen, merge): what, who, why.
    action: Mapped[str | None] = mapped_column(String(20), nullable=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class DuplicateCandidate(Base):
    """Two children who are likely the same child; a coordinator merges them or says they differ."""

    __tablename__ = "duplicate_candidate"
    __table_args__ = (UniqueConstraint("entity_a_id", "entity_b_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"), index=True)
    # entity_a_id < entity_b_id, so a pair is stored once.
    entity_a_id: Mapped[int] = mapped_column(ForeignKey("entity.id", ondelete="CASCADE"), index=True)
    entity_b_id: Mapped[int] = mapped_column(ForeignKey("entity.id", ondelete="CASCADE"), index=True)
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)  # id_number | name_birth | similar_name
    status: Mapped[str] = mapped_column(String(12), default="open", index=True)  # open | merged | distinct
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)


class PurgedEntity(Base):
    """An entity purged from the trash: its id stays taken (a phone's or the API's new entity may not reuse it)
    and Collect's integrity check reports it deleted, as Central's `purged_entities`."""

    __tablename__ = "purged_entity"
    __table_args__ = (UniqueConstraint("dataset_id", "uuid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    uuid: Mapped[str] = mapped_column(String(36))
    purged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EntityEvent(Base):
    """What entity processing did with one submission version: applied, held, skipped or failed."""

    __tablename__ = "entity_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_version_id: Mapped[int] = mapped_column(
        ForeignKey("submission_version.id", ondelete="CASCADE"), index=True)
    dataset: Mapped[str] = mapped_column(String(100))
    entity_uuid: Mapped[str | None] = mapped_column(String(60), nullable=True)
    status: Mapped[str] = mapped_column(String(12), index=True)  # applied|backlog|skipped|error
    code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    # For held offline updates: the branch and the predecessor they wait for.
    branch_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
