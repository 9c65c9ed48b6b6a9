"""Entity lists changed through Central's API: datasets, properties, entities (create, update, delete, restore).

Only roles that maintain the care file (admin, coordinator) may write, and only inside their regions:
an entity is seen and changed by a coordinator when its region code (from its `village`, `township`,
… property, app.services.regions.of_properties) lies in one of theirs — a change may not move it out of them, and a
new entity must name such a region. Entities outside the caller's regions answer 404.

Every change is an EntityVersion like those made by submissions (all properties after the change,
what was sent, the base version), with the acting user in `user_id` instead of a submission, so the
child's timeline and `/versions` show it; the entity list's revision counts up, so phones get the
new CSV. Every action is audited (`entity.*`, `dataset.*`, target `entity:<uuid>` / `dataset:<name>`).
Central's rules: data values are strings of properties the list has (400.28); an update names the
version it is based on (`baseVersion`, else 409.15) unless `force`; an id in use → 409.3, an id of
a deleted entity → 409.19.
"""
from __future__ import annotations

import re
import uuid as uuidlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.central.shapes import get_project, iso
from app.models import AuditEvent, Dataset, Entity, EntityVersion, SubmissionVersion, User, utcnow
from app.services import access, audit
from app.services.children import lock_dataset, trash
from app.services.regions import check_properties as check_region_properties
from app.services.regions import of_properties as region_of
from forms import normalize_uuid

MAINTAINERS = ("admin", "coordinator")
# Central's lib/data/dataset.js: a list name is an XML name without `.` (`:` allowed); a property name
# has no `:` but may hold `.`; `__` starts neither ([^\W\d] is a letter or `_`)
NAME = re.compile(r"^(?!__)(?:[^\W\d]|:)(?:[^\W\d]|[0-9:-]){0,99}$")
PROPERTY = re.compile(r"^(?!__)[^\W\d](?:[^\W\d]|[0-9.-]){0,99}$")
RESERVED = {"name", "label"}


def require_maintainer(session: Session, user: User, project_id: int) -> None:
    get_project(session, user, project_id)  # readers only, own project
    if user.role not in MAINTAINERS:
        raise problems.ENTITY_LISTS_CHANGED_BY_COORDINATORS()


def _dataset(session: Session, project_id: int, name: str, lock: bool = False) -> Dataset:
    """The entity list; `lock`: its row locked first, before any entity of it (docs/architecture.md, *Locks*:
    every change of a list's entities bumps its revision, so the list comes before the entity, as in ingest)."""
    ds = (lock_dataset(session, project_id, name) if lock else
          session.scalar(select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name)))
    if ds is None:
        raise problems.NOT_FOUND()
    return ds


def _bump(ds: Dataset) -> None:
    ds.revision = (ds.revision or 0) + 1


# ---------------------------------------------------------------- datasets and properties


def create_dataset(session: Session, user: User, project_id: int, body: dict[str, Any], ip: str = "") -> Dataset:
    require_maintainer(session, user, project_id)
    name = body.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise problems.BAD_ENTITY_LIST_NAME(name=name)
    if body.get("approvalRequired") is True:
        raise problems.APPROVAL_REQUIRED_UNSUPPORTED()
    for ds in session.scalars(select(Dataset).where(Dataset.project_id == project_id)):
        if ds.name == name:
            raise problems.NAME_EXISTS(name=name).add(fields=["name"], values=[name])
        if ds.name.lower() == name.lower():
            raise problems.DATASET_NAME_CASE_CONFLICT(name=ds.name, name2=name)
    ds = Dataset(project_id=project_id, name=name, properties=[], revision=0)
    session.add(ds)
    session.flush()
    audit.record(session, user, "dataset.create", target=f"dataset:{name}", ip=ip)
    return ds


def add_property(session: Session, user: User, project_id: int, dataset: str, body: dict[str, Any],
                 ip: str = "") -> None:
    require_maintainer(session, user, project_id)
    ds = _dataset(session, project_id, dataset, lock=True)  # a new property changes the list (and its revision)
    name = body.get("name")
    if not isinstance(name, str) or not PROPERTY.match(name) or name.lower() in RESERVED:
        raise problems.BAD_PROPERTY_NAME(name=name)
    props = list(ds.properties or [])
    if name in props:
        raise problems.NAME_EXISTS(name=name).add(fields=["name"], values=[name])
    if any(p.lower() == name.lower() for p in props):
        raise problems.PROPERTY_NAME_CASE_CONFLICT()
    ds.properties = [*props, name]
    _bump(ds)
    audit.record(session, user, "dataset.update", target=f"dataset:{dataset}", ip=ip, property=name)


# ---------------------------------------------------------------- entities


def _data(ds: Dataset, raw: Any, *, required_label: bool, label: Any) -> tuple[str | None, dict[str, str]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise problems.ENTITY_DATA_NOT_OBJECT()
    unknown = [k for k in raw if k not in (ds.properties or [])]
    if unknown:
        raise problems.ENTITY_UNKNOWN_PROPERTY(unknown=unknown[0], name=ds.name)
    bad = [k for k, v in raw.items() if not isinstance(v, str)]
    if bad:
        raise problems.ENTITY_VALUE_NOT_STRING(bad=bad[0])
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise problems.ENTITY_LABEL_EMPTY()
    if required_label and label is None:
        raise problems.ENTITY_LABEL_MISSING()
    check_region_properties(raw)
    return (label.strip() if isinstance(label, str) else None), dict(raw)


def _check_region(user: User, region: str | None) -> None:
    if user.role == "admin":
        return
    if region is None or not access.sees_region(user, region):
        raise problems.ENTITY_REGION_OUTSIDE()


def _new_entity(session: Session, user: User, ds: Dataset, item: Any) -> Entity:
    if not isinstance(item, dict):
        raise problems.ENTITY_NOT_OBJECT()
    label, data = _data(ds, item.get("data"), required_label=True, label=item.get("label"))
    raw_uuid = item.get("uuid")
    uid = normalize_uuid(raw_uuid) if raw_uuid else str(uuidlib.uuid4())
    if uid is None:
        raise problems.ENTITY_UUID_INVALID(raw_uuid=raw_uuid)
    region = region_of(data)
    _check_region(user, region)
    existing = session.scalar(select(Entity).where(Entity.dataset_id == ds.id, Entity.uuid == uid))
    if existing is not None and user.role != "admin" and not access.sees_region(user, existing.region_code):
        # An id of a record outside the caller's regions: not named, not confirmed (GET answers it 404), the
        # same answer as for any id this caller cannot use.
        raise problems.UUID_NOT_USABLE()
    if existing is None and trash.was_purged(session, ds, [uid]):
        raise problems.UUID_OF_DELETED_ENTITY(uid=uid)
    if existing is not None:
        if existing.deleted_at is not None:
            raise problems.UUID_OF_DELETED_ENTITY(uid=uid)
        raise problems.UUID_EXISTS(uid=uid).add(fields=["uuid"], values=[uid])
    entity = Entity(dataset_id=ds.id, uuid=uid, label=label or "", version=1, data=data, region_code=region)
    session.add(entity)
    session.flush()
    session.add(EntityVersion(entity_id=entity.id, version=1, label=entity.label, data=dict(data),
                              data_received=dict(data), user_id=user.id))
    return entity


def create_entities(session: Session, user: User, project_id: int, dataset: str, body: dict[str, Any],
                    ip: str = "") -> tuple[Dataset, list[str]]:
    """One entity ({label, data, uuid?}) or many ({entities: [...], source}); all or nothing."""
    require_maintainer(session, user, project_id)
    ds = _dataset(session, project_id, dataset, lock=True)
    if "entities" in body:
        items = body["entities"]
        if not isinstance(items, list) or not items:
            raise problems.BULK_ENTITIES_MISSING()
    else:
        items = [body]
    uids = []
    seen: set[str] = set()
    for item in items:
        entity = _new_entity(session, user, ds, item)
        if entity.uuid in seen:
            raise problems.ENTITY_UUID_EXISTS(uuid=entity.uuid)
        seen.add(entity.uuid)
        uids.append(entity.uuid)
    _bump(ds)
    session.flush()
    source = body.get("source") if isinstance(body.get("source"), dict) else None
    for uid in uids:
        audit.record(session, user, "entity.create", target=f"entity:{uid}", ip=ip, dataset=dataset,
                     bulk=len(uids) > 1, source=(source or {}).get("name"))
    return ds, uids


def _locked(session: Session, user: User, ds: Dataset, uid: str, deleted: bool = False) -> Entity:
    """The entity row, locked for the change (SELECT … FOR UPDATE on PostgreSQL), in the caller's regions."""
    norm = normalize_uuid(uid) or uid.strip().lower()
    q = select(Entity).where(Entity.dataset_id == ds.id, Entity.uuid == norm,
                             access.region_filter(user, Entity.region_code))
    q = q.where(Entity.deleted_at.is_not(None) if deleted else Entity.deleted_at.is_(None))
    entity = session.scalar(q.with_for_update())
    if entity is None:
        raise problems.NOT_FOUND()
    return entity


def update_entity(session: Session, user: User, project_id: int, dataset: str, uid: str, body: dict[str, Any], *,
                  base_version: str | None, force: bool, resolve: bool = False, ip: str = "") -> Dataset:
    require_maintainer(session, user, project_id)
    ds = _dataset(session, project_id, dataset, lock=True)
    entity = _locked(session, user, ds, uid)
    if resolve and not entity.conflict:
        raise problems.ENTITY_HAS_NO_CONFLICT()
    if not force and base_version != str(entity.version):
        raise problems.ENTITY_VERSION_MISMATCH(version=entity.version, base_version=base_version).add(
            current=entity.version, provided=base_version)
    if resolve and not body:
        entity.conflict = None
        audit.record(session, user, "entity.update.resolve", target=f"entity:{entity.uuid}", ip=ip, dataset=dataset)
        return ds
    label, data = _data(ds, body.get("data"), required_label=False, label=body.get("label"))
    new_data = dict(entity.data or {})
    new_data.update(data)
    region = region_of(new_data) or entity.region_code
    _check_region(user, region)
    base = entity.version
    entity.version = base + 1
    entity.label = label or entity.label
    entity.data = new_data
    entity.region_code = region
    entity.updated_at = utcnow()
    if resolve:
        entity.conflict = None
    session.add(EntityVersion(entity_id=entity.id, version=entity.version, label=entity.label, data=new_data,
                              data_received=dict(data, **({"label": label} if label else {})),
                              base_version=base, user_id=user.id))
    _bump(ds)
    session.flush()
    audit.record(session, user, "entity.update.version", target=f"entity:{entity.uuid}", ip=ip, dataset=dataset,
                 version=entity.version, force=force)
    return ds


def delete_entity(session: Session, user: User, project_id: int, dataset: str, uid: str, ip: str = "") -> None:
    """Move one entity to the trash (app/services/children/trash.py); 404 when absent, deleted or out of scope."""
    require_maintainer(session, user, project_id)
    trash.delete_entities(session, project_id, user, dataset, [uid], ip=ip)


def restore_entity(session: Session, user: User, project_id: int, dataset: str, uid: str, ip: str = "") -> None:
    require_maintainer(session, user, project_id)
    trash.restore_entities(session, project_id, user, dataset, [uid], ip=ip)


def bulk(session: Session, user: User, project_id: int, dataset: str, body: dict[str, Any], *, restore: bool,
         ip: str = "") -> dict[str, int]:
    """Central's bulk-delete / bulk-restore ({"ids": [...]}): ids absent, already in that state or outside the
    caller's regions are skipped; the answer counts those changed."""
    require_maintainer(session, user, project_id)
    uids = trash.uuids_of(body.get("ids"))
    change = trash.restore_entities if restore else trash.delete_entities
    return {"count": len(change(session, project_id, user, dataset, uids, ip=ip, strict=False))}


# ---------------------------------------------------------------- reading: diffs and audits


def diffs(session: Session, entity: Entity, red: access.Redactor, ds_name: str) -> list[list[dict[str, Any]]]:
    """For each version after the first: what changed from the version before ({old, new, propertyName}), as
    `red`'s reader may see it (a label built from sensitive data is the pseudonym, sensitive properties ***)."""
    versions = list(session.scalars(select(EntityVersion).where(EntityVersion.entity_id == entity.id)
                                    .order_by(EntityVersion.version)))

    def shown(v: EntityVersion) -> dict[str, Any]:
        return {"label": red.child_label(ds_name, entity.uuid, v.label),
                **red.entity_properties(ds_name, dict(v.data or {}))}

    out: list[list[dict[str, Any]]] = []
    for before, after in zip(versions, versions[1:], strict=False):
        a, b = shown(before), shown(after)
        out.append([{"old": a.get(k), "new": b.get(k), "propertyName": k}
                    for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)])
    return out


def audits(session: Session, entity: Entity) -> list[dict[str, Any]]:
    """What happened to the entity, newest first: API actions from the audit log, and the versions
    submissions made (with the submission)."""
    events: list[dict[str, Any]] = []
    for e in session.scalars(select(AuditEvent).where(AuditEvent.target == f"entity:{entity.uuid}")):
        events.append({"actorId": e.user_id, "action": e.action, "acteeId": entity.uuid, "details": e.details or {},
                       "loggedAt": iso(e.at)})
    rows = session.execute(select(EntityVersion, SubmissionVersion.instance_id, SubmissionVersion.submitter_id)
                           .join(SubmissionVersion, SubmissionVersion.id == EntityVersion.submission_version_id)
                           .where(EntityVersion.entity_id == entity.id))
    for v, instance_id, submitter in rows:
        events.append({"actorId": submitter, "action": "entity.create" if v.version == 1 else "entity.update.version",
                       "acteeId": entity.uuid, "details": {"entityId": entity.id, "version": v.version,
                                                           "submission": {"instanceId": instance_id}},
                       "loggedAt": iso(v.created_at)})
    events.sort(key=lambda e: e["loggedAt"] or "", reverse=True)
    return events
