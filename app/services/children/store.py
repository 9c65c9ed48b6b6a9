"""The children's rows and the primitives every change of a child's file uses.

The care file keeps each child as an entity of the list `children` (一人一档). Everything in this
package reads children through `children_query` (scoped to the user's regions) and changes them
through the primitives here, in one lock order (docs/architecture.md, "Locks"):

1. the entity list (`lock_dataset`) — every change of a list's entities takes it first, submissions
   and case work alike: on PostgreSQL an exclusive advisory lock named after the list, then its
   `dataset` row; the plain changes of new records (app/services/children/lean.py) share the advisory
   lock instead, so that they exclude every other change of the list but not each other (a trigger of
   migration 0029 refuses an update of a list's row by a transaction that does not hold the lock);
2. then the children themselves (`locked_child`), several in the order of their uuids.

A change from the server (case work, merges) is a new entity version without a submission
(`server_version`); it bumps the list's revision (the phones' CSV cache key) like a form update.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Integer, String, and_, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from app import problems
from app.models import (
    Dataset,
    DatasetRevision,
    Entity,
    EntityVersion,
    FormVersion,
    Submission,
    SubmissionVersion,
    User,
    utcnow,
)
from app.services import access, regions
from app.services.schemas import schema_of
from forms import entity_scopes, extract, parse_submission

CHILDREN = "children"
STATUS_PROPS = ("status", "risk_level", "referral_status", "next_followup_due")
RISK_LEVELS = ("unassessed", "green", "yellow", "orange", "red")
STATUSES = ("registered", "healthy", "watch", "refer", "urgent", "closed")
REFERRAL_STATUSES = ("none", "referred", "in_service", "closed")


# ---------------------------------------------------------------- lists


def get_dataset(session: Session, project_id: int, name: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name))


# PostgreSQL advisory locks, two-number form: the first number names the purpose (CareFile's other advisory
# locks, app/migrate.py and app/db.py, use the one-number form, a separate space of names).
LIST_LOCK = 0x43464C53  # "CFLS": an entity list; second number: LIST_KEY_SQL of its project and name
KEY_LOCK = 0x43464B59  # "CFKY": a name within a list taken by its plain changes (app/services/children/lean.py)
# The list's second number, computed by the server (the trigger of migration 0029 computes the same).
LIST_KEY_SQL = "hashtext(CAST(:project_id AS TEXT) || '/' || CAST(:name AS TEXT))"
_LIST_LOCK = text(f"SELECT pg_advisory_xact_lock({LIST_LOCK}, {LIST_KEY_SQL})").bindparams(
    bindparam("project_id", type_=Integer()), bindparam("name", type_=String()))
# Built once: building a statement costs more CPU than running it (every entity change takes this lock).
_LOCK_DATASET = (select(Dataset).where(Dataset.project_id == bindparam("project_id"), Dataset.name == bindparam("name"))
                 .with_for_update().execution_options(populate_existing=True))


def lock_dataset(session: Session, project_id: int, name: str) -> Dataset | None:
    """The entity list, locked until the commit (the module's lock order): every change of the list takes
    this first. PostgreSQL: the list's advisory lock, exclusive, then its row (in this order: a plain change
    holding the shared advisory lock checks its new child's list row as a foreign key)."""
    params = {"project_id": project_id, "name": name}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LIST_LOCK, params)
    return session.scalar(_LOCK_DATASET, params)


_SLOTS = select(func.coalesce(func.sum(DatasetRevision.n), 0)).where(DatasetRevision.dataset_id == bindparam("ds"))


def list_revision(session: Session, ds: Dataset) -> int:
    """The list's revision (the phones' CSV cache key): its row's counter and the plain changes' counters
    (DatasetRevision). Every committed change of the list raises it."""
    return (ds.revision or 0) + int(session.scalar(_SLOTS, {"ds": ds.id}) or 0)


def ensure_dataset(session: Session, project_id: int, name: str, properties: list[str]) -> Dataset:
    """The entity list, created if missing, with these properties added (a new property bumps its revision)."""
    ds = lock_dataset(session, project_id, name)
    if ds is None:
        ds = Dataset(project_id=project_id, name=name, properties=[], revision=0)
        session.add(ds)
    merged = list(ds.properties or [])
    for p in properties:
        if p not in merged and p != "label":
            merged.append(p)
    if merged != ds.properties:
        ds.properties = merged
        ds.revision = (ds.revision or 0) + 1
    session.flush()
    return ds


def bump_revision(session: Session, entity: Entity) -> None:
    """Change the children.csv cache key (Dataset.revision) after a server-side change."""
    ds = session.get(Dataset, entity.dataset_id)
    if ds is not None:
        ds.revision = (ds.revision or 0) + 1


# ---------------------------------------------------------------- children


def children_query(session: Session, project_id: int, user: User) -> Any:
    """The children (not deleted) of the user's regions: every read of children starts here."""
    access.require_reader(user)
    return (select(Entity).join(Dataset, Dataset.id == Entity.dataset_id)
            .where(Dataset.project_id == project_id, Dataset.name == CHILDREN, Entity.deleted_at.is_(None),
                   access.region_filter(user, Entity.region_code)))


def get_child(session: Session, project_id: int, user: User, uid: str) -> Entity:
    """The child, or 404 — also when the child lies outside the user's regions."""
    child = session.scalar(children_query(session, project_id, user).where(Entity.uuid == uid.strip().lower()))
    if child is None:
        raise problems.NO_SUCH_CHILD()
    return child


def locked_child(session: Session, project_id: int, user: User, uid: str) -> Entity:
    """The child, locked for update (404 when it lies outside the user's regions), after the list's lock
    (the module's lock order: a change of a child also bumps the list's revision, so a case transfer that
    locked the child first and a submission that locked the list first would deadlock)."""
    lock_dataset(session, project_id, CHILDREN)
    child = session.scalar(children_query(session, project_id, user).where(Entity.uuid == uid.strip().lower())
                           .with_for_update(of=Entity))
    if child is None:
        raise problems.NO_SUCH_CHILD()
    return child


def server_version(session: Session, entity: Entity, changes: dict[str, str], *, action: str, user: User | None,
                   note: str = "") -> EntityVersion:
    """Write the entity's next version from the server (no submission): `changes` on top of the current data."""
    data = dict(entity.data or {})
    data.update(changes)
    base = entity.version
    entity.version = base + 1
    entity.data = data
    entity.region_code = regions.of_properties(data) or entity.region_code
    entity.updated_at = utcnow()
    version = EntityVersion(entity_id=entity.id, version=entity.version, label=entity.label, data=data,
                            data_received=dict(changes), submission_id=None, submission_version_id=None,
                            base_version=base, action=action, actor_id=user.id if user else None,
                            note=note or None)
    session.add(version)
    bump_revision(session, entity)
    session.flush()
    return version


def follow_child(session: Session, child: Entity) -> None:
    """The child's records follow the child: their region becomes the child's, so the records (and
    their photos) are seen by whoever now sees the child, and no longer by the old region's staff."""
    session.execute(update(Submission).where(Submission.entity_uuid == child.uuid, Submission.region_code.is_not(None))
                    .values(region_code=child.region_code).execution_options(synchronize_session=False))


def answers_for(session: Session, entity: Entity, sv: SubmissionVersion) -> dict[str, Any]:
    """The answers of a record about this child: the record's own, or — when the record registered several
    children from a repeat (entities spec 2025.1) — the record's overlaid by the child's repeat instance
    (found by the entity id in its meta/entity block)."""
    fv = session.get(FormVersion, sv.form_version_id)
    schema = schema_of(fv) if fv is not None else None
    if schema is None or not any(d.repeat for d in schema.entities):
        return dict(sv.data or {})
    _envelope, tree = parse_submission(sv.xml, max_bytes=max(len(sv.xml), 1))
    for scope in entity_scopes(tree, schema, extract(tree, schema)):
        if scope.block is not None and scope.block.uuid == entity.uuid:
            return dict(scope.values)
    return dict(sv.data or {})


def history(session: Session, entity: Entity) -> list[EntityVersion]:
    """Every version of the entity, oldest first."""
    return list(session.scalars(select(EntityVersion).where(EntityVersion.entity_id == entity.id)
                                .order_by(EntityVersion.version)))


# ---------------------------------------------------------------- follow-ups


def overdue_condition(today: date) -> Any:
    """SQL condition: the child's next follow-up date lies before today and the file is not closed."""
    due = Entity.data["next_followup_due"].as_string()
    return and_(due.is_not(None), due != "", due < today.isoformat(),
                func.coalesce(Entity.data["status"].as_string(), "") != "closed")


def is_overdue(child: Any, today: date) -> bool:
    """The same rule for a row already read (a summary object or a dict)."""
    d = child if isinstance(child, dict) else child.__dict__
    due, status = d.get("next_followup_due") or "", d.get("status") or ""
    return bool(due) and due < today.isoformat() and status != "closed"
