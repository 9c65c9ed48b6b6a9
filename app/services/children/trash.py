"""The entity lists' trash: deleting entities, restoring them, and purging them 30 days after deletion.

As ODK Central (2024.3+): a deleted entity keeps its rows with `deleted_at` set; it leaves the phones'
lists (children.csv), the API's lists and OData, and Collect's integrity check reports it deleted. Within
TRASH_DAYS it can be restored as it was. After that, `carefile purge` (or a forced purge) removes it
everywhere: its versions, its entity events (the record of what submissions did to it, including
offline updates still waiting for it), its held changes, its duplicate pairs and its directory row (its
name, guardian, ID number for search), and the files merged into it. Its id is kept in `purged_entity`:
no new entity may take it, and the integrity check still answers "deleted". The submissions that
registered or updated the child stay (they are records of their forms, with their own trash).

A merged child (Entity.merged_into) is deleted as well, but it is not in the trash: merging is case work,
and such a file goes only when its survivor is purged.

Only coordinators and admins delete and restore (access policy verb `trash.manage`), and only entities in
their regions; others answer 404 as if absent. The lock order is the module store's (docs/architecture.md,
*Locks*): the list's row, then the entities in the order of their uuids.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from app import problems
from app.models import (
    ChildDirectory,
    Dataset,
    DuplicateCandidate,
    Entity,
    EntityEvent,
    EntityVersion,
    Form,
    HeldChange,
    PurgedEntity,
    SubmissionVersion,
    User,
    utcnow,
)
from app.services import access, audit
from app.services.children.store import lock_dataset
from forms import normalize_uuid

TRASH_DAYS = 30  # as Central's PURGE_DAY_RANGE
MAX_BULK = 10_000  # ids in one bulk request


def in_trash() -> ColumnElement[bool]:
    """SQL condition: the entity is in the trash (deleted, and not because it was merged into another file)."""
    return Entity.deleted_at.is_not(None) & Entity.merged_into.is_(None)


def purge_due(deleted_at: datetime | None) -> datetime | None:
    """When `carefile purge` removes an entity or a submission deleted at this time."""
    return deleted_at + timedelta(days=TRASH_DAYS) if deleted_at is not None else None


def uuids_of(raw: Any) -> list[str]:
    """The ids of a bulk request (`{"ids": [...]}`, as Central's bulk-delete and bulk-restore), normalised."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_BULK:
        raise problems.BULK_IDS_MISSING(max_bulk=MAX_BULK)
    out: list[str] = []
    for item in raw:
        uid = normalize_uuid(item) if isinstance(item, str) else None
        if uid is None:
            raise problems.BULK_ID_INVALID(item=str(item)[:60])
        out.append(uid)
    return sorted(set(out))


def _locked_list(session: Session, project_id: int, dataset: str, user: User | None = None) -> Dataset:
    if user is not None and project_id != user.project_id:
        raise problems.NOT_FOUND()
    ds = lock_dataset(session, project_id, dataset)
    if ds is None:
        raise problems.NOT_FOUND()
    return ds


def _locked_entities(session: Session, user: User, ds: Dataset, uids: list[str], deleted: bool) -> list[Entity]:
    """The entities of these ids in the user's regions, deleted (in the trash) or not, locked in uuid order."""
    q = select(Entity).where(Entity.dataset_id == ds.id, Entity.uuid.in_(uids),
                             access.region_filter(user, Entity.region_code))
    q = q.where(in_trash() if deleted else Entity.deleted_at.is_(None))
    return list(session.scalars(q.order_by(Entity.uuid).with_for_update()))


def _record(session: Session, user: User, action: str, ds: Dataset, uids: list[str], ip: str) -> None:
    if len(uids) == 1:
        audit.record(session, user, f"entity.{action}", target=f"entity:{uids[0]}", ip=ip, dataset=ds.name)
    elif uids:
        audit.record(session, user, f"entity.bulk.{action}", target=f"dataset:{ds.name}", ip=ip, dataset=ds.name,
                     entities=uids)


def delete_entities(session: Session, project_id: int, user: User, dataset: str, uids: list[str], *, ip: str = "",
                    strict: bool = True) -> list[str]:
    """Move these entities to the trash; the ids of those moved. strict: every id must be found (one
    entity's DELETE: 404 otherwise); a bulk delete skips ids that are absent, deleted or out of scope."""
    return _move(session, project_id, user, dataset, uids, to_trash=True, ip=ip, strict=strict)


def restore_entities(session: Session, project_id: int, user: User, dataset: str, uids: list[str], *, ip: str = "",
                     strict: bool = True) -> list[str]:
    """Take these entities out of the trash, as they were; the ids of those restored."""
    return _move(session, project_id, user, dataset, uids, to_trash=False, ip=ip, strict=strict)


def _move(session: Session, project_id: int, user: User, dataset: str, uids: list[str], *, to_trash: bool, ip: str,
          strict: bool) -> list[str]:
    access.require(user, "trash.manage")
    ds = _locked_list(session, project_id, dataset, user)
    wanted = sorted({normalize_uuid(u) or u.strip().lower() for u in uids})
    rows = _locked_entities(session, user, ds, wanted, deleted=not to_trash)
    if strict and len(rows) != len(wanted):
        raise problems.NOT_FOUND()
    now = utcnow()
    for e in rows:
        if to_trash:
            e.deleted_at = now
        else:
            e.deleted_at = None
            e.updated_at = now  # as Central: a restore changes the entity's metadata
    if rows:
        ds.revision = (ds.revision or 0) + 1  # the phones' lists change
    done = [e.uuid for e in rows]
    _record(session, user, "delete" if to_trash else "restore", ds, done, ip)
    session.flush()
    return done


@dataclass
class TrashRow:
    uuid: str
    label: str
    region_code: str | None
    deleted_at: datetime
    purge_on: datetime | None


def trashed(session: Session, project_id: int, user: User, dataset: str, limit: int = 500) -> list[TrashRow]:
    """The list's entities in the trash, in the user's regions, newest deletion first; labels as the user may
    see them (a pseudonym for readers without the identifying-details grant)."""
    access.require(user, "trash.manage")
    red = access.Redactor(session, user, project_id)
    rows = session.scalars(
        select(Entity).join(Dataset, Dataset.id == Entity.dataset_id)
        .where(Dataset.project_id == project_id, Dataset.name == dataset, in_trash(),
               access.region_filter(user, Entity.region_code))
        .order_by(Entity.deleted_at.desc(), Entity.id).limit(limit))
    return [TrashRow(e.uuid, red.child_label(dataset, e.uuid, e.label), e.region_code, e.deleted_at,
                     purge_due(e.deleted_at)) for e in rows if e.deleted_at is not None]


# ---------------------------------------------------------------- purge


def purge(session: Session, *, now: datetime | None = None, force: bool = False, project_id: int | None = None,
          dataset: str | None = None, uuids: list[str] | None = None) -> int:
    """Remove entities deleted more than TRASH_DAYS ago (force: every entity in the trash), optionally of one
    project, list or ids; returns how many left the trash. Runs in the caller's transaction."""
    cutoff = (now or utcnow()) - timedelta(days=TRASH_DAYS)
    q = select(Entity.dataset_id, Entity.uuid).join(Dataset, Dataset.id == Entity.dataset_id).where(in_trash())
    if not force:
        q = q.where(Entity.deleted_at < cutoff)
    if project_id is not None:
        q = q.where(Dataset.project_id == project_id)
    if dataset is not None:
        q = q.where(Dataset.name == dataset)
    if uuids is not None:
        q = q.where(Entity.uuid.in_([normalize_uuid(u) or u for u in uuids]))
    by_list: dict[int, list[str]] = {}
    for ds_id, uid in session.execute(q):
        by_list.setdefault(ds_id, []).append(uid)
    total = 0
    for ds_id in sorted(by_list):
        total += _purge_list(session, ds_id, sorted(by_list[ds_id]))
    return total


def _purge_list(session: Session, ds_id: int, uids: list[str]) -> int:
    ds = session.get(Dataset, ds_id)
    assert ds is not None
    ds = _locked_list(session, ds.project_id, ds.name)
    # Under the list's lock: still in the trash (a restore may have come first)?
    doomed = list(session.scalars(select(Entity).where(Entity.dataset_id == ds.id, Entity.uuid.in_(uids), in_trash())
                                  .order_by(Entity.uuid).with_for_update()))
    if not doomed:
        return 0
    gone_uuids = [e.uuid for e in doomed]
    merged = list(session.scalars(select(Entity).where(Entity.dataset_id == ds.id,
                                                       Entity.merged_into.in_(gone_uuids))))
    rows = doomed + merged
    ids = [e.id for e in rows]
    all_uuids = [e.uuid for e in rows]
    project_versions = (select(SubmissionVersion.id).join(Form, Form.id == SubmissionVersion.form_id)
                        .where(Form.project_id == ds.project_id))
    session.execute(delete(EntityEvent).where(EntityEvent.dataset == ds.name, EntityEvent.entity_uuid.in_(all_uuids),
                                              EntityEvent.submission_version_id.in_(project_versions))
                    .execution_options(synchronize_session=False))
    session.execute(delete(HeldChange).where(HeldChange.project_id == ds.project_id, HeldChange.kind == "entity",
                                             HeldChange.target.in_(all_uuids))
                    .execution_options(synchronize_session=False))
    session.execute(delete(DuplicateCandidate).where(DuplicateCandidate.entity_a_id.in_(ids)
                                                     | DuplicateCandidate.entity_b_id.in_(ids))
                    .execution_options(synchronize_session=False))
    session.execute(delete(ChildDirectory).where(ChildDirectory.entity_id.in_(ids))
                    .execution_options(synchronize_session=False))
    session.execute(delete(EntityVersion).where(EntityVersion.entity_id.in_(ids))
                    .execution_options(synchronize_session=False))
    for e in rows:
        session.delete(e)
    session.flush()
    session.add_all(PurgedEntity(dataset_id=ds.id, uuid=uid) for uid in all_uuids)
    audit.record(session, None, "entity.purge", target=f"dataset:{ds.name}", username="carefile purge",
                 dataset=ds.name, entities=len(doomed))
    session.flush()
    return len(doomed)


def was_purged(session: Session, ds: Dataset, uids: list[str]) -> set[str]:
    """Which of these ids belonged to purged entities of the list (they may not be used again)."""
    if not uids:
        return set()
    return set(session.scalars(select(PurgedEntity.uuid).where(PurgedEntity.dataset_id == ds.id,
                                                               PurgedEntity.uuid.in_(uids))))
