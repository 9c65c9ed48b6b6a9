"""Entity lists (the care file's `children` list): applying the entity blocks of submissions.

Processing follows the ODK entities spec through 2025.1 and ODK Central's rules (docs/architecture.md, "Entities");
2025.1's entities from a repeat (several per submission) are applied one block at a time (`process_all`):
- create: a new entity, version 1; an id already in use is an error (nothing is overwritten);
- update: applied on top of the current version; only the properties the submission sent change;
- offline updates (2024.1: trunkVersion + branchId): a chain of updates made on one phone while
  offline is applied in branch order. An update whose predecessor on the same branch has not
  arrived yet is held (status "backlog") and applied as soon as the predecessor is; held updates
  older than BACKLOG_FORCE_AFTER are applied anyway, on top of the current version (looked for
  by the next change of the same list, at most every FORCE_CHECK_EVERY seconds per process).
- conflicts: an update based on an older version than the current one is still applied (nothing
  is lost: every version is kept in entity_version) and the entity is flagged "soft" (other
  properties changed meanwhile) or "hard" (the same property was changed differently on the
  server) for review.
- an offline update (it carries a branchId) of an entity that is not on the server yet — the
  phone registered the child offline and the registration has not arrived — is held the same way
  and applied when the registration arrives.
Processing runs inside the submission's transaction under a savepoint; its errors are recorded
as entity_event rows and never fail the OpenRosa POST. An error's message is a fixed sentence
with ids and version numbers only — never an exception's text (which can hold SQL and a child's
properties); unexpected exceptions are logged by class and code location only.

Concurrency (docs/architecture.md, *Locks*; README "How submissions are handled"). Every change of an entity list
(create, update, held update, backlog drain) first locks the list's `dataset` row
(`SELECT … FOR UPDATE` on PostgreSQL; SQLite serialises writers already) and reads the entity
only after that. The lock is taken outside the savepoint entity processing runs in: on
PostgreSQL, rolling back a savepoint (a held update, an error) releases the row locks taken
inside it. Changes of one list are therefore applied one after the other, each on top of the
version the previous one committed: ten updates with the same baseVersion become ten versions
(the later ones flagged as conflicts), an update waiting for its offline predecessor or for the
registration cannot miss it, and the list's `revision` (the phones' CSV cache key) counts every
change. We lock the list rather than each entity because every change already updates the list's
revision row, which serialises them from that point to the commit anyway; taking that lock
first costs no extra statement, cannot deadlock with a per-entity lock, and also covers entities
that do not exist yet. Registrations, updates and plain submissions gain no statement (apart from
the look for old held updates, once every FORCE_CHECK_EVERY seconds per process). A deadlock or
serialization failure is not recorded as an entity error: it aborts the submission's
transaction, which `receive_submission` runs again.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session

from app import problems
from app.db import is_retryable
from app.errors import Problem
from app.models import (
    Dataset,
    Entity,
    EntityEvent,
    EntityVersion,
    FormVersion,
    PurgedEntity,
    Submission,
    SubmissionVersion,
    User,
    utcnow,
)
from app.services import access, events
from app.services.children import held as held_queue
from app.services.children.store import lock_dataset
from app.services.regions import of_properties as region_of
from app.services.schemas import schema_of
from forms import (
    EntityBlock,
    EntityScope,
    FormSchema,
    SubmissionData,
    entity_scopes,
    extract,
    normalize_uuid,
    parse_submission,
)

log = logging.getLogger(__name__)

BACKLOG_FORCE_AFTER = timedelta(days=5)


# ---------------------------------------------------------------- processing


class EntityProblem(Exception):
    """An entity block that cannot be applied: recorded on the submission's entity event (Central's codes)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.code = problem.code
        self.message = problem.message


class HoldForBacklog(Exception):
    """The predecessor of an offline update (or the registration of its entity) has not arrived yet."""

    def __init__(self, uid: str | None = None) -> None:
        super().__init__("held")
        self.uid = uid  # set when waiting for the entity's registration


INTERNAL_ERROR = problems.ENTITY_PROCESSING_FAILED.code


def internal_error_message(err: BaseException) -> str:
    """The entity_event text for an unexpected exception: its class, never its text (SQL, properties)."""
    return (f"internal error ({type(err).__name__}): this change was not applied; the submission itself is "
            "stored. An administrator finds the time and place in the server log.")


# Statements of every entity change, built once (building one costs more CPU than running it).
_ENTITY = select(Entity).where(Entity.dataset_id == bindparam("ds"), Entity.uuid == bindparam("uid"))
_BACKLOG_FOR = exists().where(EntityEvent.status == "backlog", EntityEvent.entity_uuid == bindparam("uid"))
_TAKEN_AND_WAITING = select(exists().where(Entity.dataset_id == bindparam("ds"), Entity.uuid == bindparam("uid")),
                            _BACKLOG_FOR)
_WAITING = select(_BACKLOG_FOR)
_PURGED = select(exists().where(PurgedEntity.dataset_id == bindparam("ds"), PurgedEntity.uuid == bindparam("uid")))
_VERSIONS = select(EntityVersion).where(EntityVersion.entity_id == bindparam("entity_id"),
                                        EntityVersion.version.in_(bindparam("numbers", expanding=True)))
_VERSIONS_AND_STEP = select(EntityVersion).where(
    EntityVersion.entity_id == bindparam("entity_id"),
    or_(EntityVersion.version.in_(bindparam("numbers", expanding=True)),
        and_(EntityVersion.branch_id == bindparam("branch"), EntityVersion.branch_base_version == bindparam("step"))))


def _target(session: Session, ds: Dataset | None, block: EntityBlock) -> Entity | None:
    """The entity an update names, read under the list's lock (None for a create, or when it is not there)."""
    uid = normalize_uuid(block.entity_id)
    if not block.update or ds is None or uid is None:
        return None
    return session.scalar(_ENTITY, {"ds": ds.id, "uid": uid})


def _touched_regions(block: EntityBlock, data: SubmissionData, target: Entity | None) -> list[str | None] | None:
    """Regions the entity change would touch (the child's and a new one), or None if nothing exists to change."""
    new_region = region_of(_props(block, data))
    if block.create and not block.update:
        return [new_region]
    if target is None:
        return [new_region] if block.create else None
    regions = [target.region_code]
    if new_region and new_region != target.region_code:
        regions.append(new_region)
    return regions


def _held_by_scope(session: Session, project_id: int, sv: SubmissionVersion, block: EntityBlock,
                   data: SubmissionData, event: EntityEvent, target: Entity | None) -> bool:
    """Hold an entity change outside the submitter's regions for review (app.services.children.held)."""

    submitter = session.get(User, sv.submitter_id) if sv.submitter_id else None
    if submitter is None:
        return False
    regions = _touched_regions(block, data, target)
    if regions is None or all(access.may_write_region(submitter, r) for r in regions):
        return False
    event.status = "held"
    event.message = "held for review: the change lies outside the submitter's regions"
    session.add(event)
    session.flush()
    held_queue.hold(session, project_id=project_id, kind="entity", sv=sv, target=normalize_uuid(block.entity_id) or "",
              regions=regions, reason="create" if block.create and not block.update else "update")
    return True


def apply_held(session: Session, project_id: int, event: EntityEvent) -> None:
    """Apply an entity change a coordinator approved, as if it had just arrived."""
    event.status = "backlog"  # what _retry takes up (it re-reads the event under the list's lock)
    session.flush()
    if not _retry(session, project_id, event, force=False):
        event.status = "backlog"
        event.message = "approved; waiting for the earlier offline update of its branch"


def process_submission(session: Session, project_id: int, sv: SubmissionVersion, schema: FormSchema,
                       block: EntityBlock | None, data: SubmissionData, *,
                       check_scope: bool = True) -> EntityEvent | None:
    """Apply the submission's entity block; record what happened. Never raises.

    With check_scope, a change outside the submitter's regions is held for review instead.
    """
    if block is None or schema.entity is None or not (block.create or block.update):
        return None  # e.g. registration without consent: create evaluates to false
    # Column-sized values only (PostgreSQL refuses longer ones, failing the POST): the list name as
    # sent, cut to its column; the entity id only when it is a UUID.
    event = EntityEvent(submission_version_id=sv.id, dataset=block.dataset[:100],
                        entity_uuid=normalize_uuid(block.entity_id), status="applied", message="")
    # The list's lock first, so that the entity read for the scope check is the one the change applies to.
    # It is taken outside the savepoint below: rolling a savepoint back (a held update, an error) releases
    # the locks taken inside it, and the event recorded below must be written under it.
    ds = lock_dataset(session, project_id, block.dataset)
    target = _target(session, ds, block)
    if check_scope and _held_by_scope(session, project_id, sv, block, data, event, target):
        return event
    # An edit of a submission that already changed an entity does not change it again (as Central).
    if sv.deprecated_id:
        done = session.scalar(select(EntityVersion.id).where(EntityVersion.submission_id == sv.submission_id))
        if done is not None:
            event.status, event.message = "skipped", "edit of a submission that already updated the entity"
            session.add(event)
            return event
    entity: Entity | None = None
    try:
        with session.begin_nested():
            entity = _apply(session, ds, sv, schema, block, data, target=target)
            event.entity_uuid = entity.uuid
            _drain_backlog(session, project_id, EntityEvent.branch_id == block.branch_id if block.branch_id else None)
    except HoldForBacklog as held:
        event.status, event.branch_id = "backlog", block.branch_id
        if held.uid:
            event.entity_uuid = held.uid
            event.message = f"waiting for the registration of entity {held.uid} (an earlier offline form)"
        else:
            event.message = (f"waiting for the earlier offline update of branch {block.branch_id} "
                             f"(base version {block.base_version})")
    except EntityProblem as err:
        event.status, event.code, event.message = "error", err.code, err.message
    except Exception as err:  # a bug must not lose the submission: record it
        if is_retryable(err):
            raise  # lost a race (deadlock, serialization): the whole submission is run again
        # Class and code location only: the exception's text can hold SQL and the child's properties.
        log.error("entity processing failed for submission version %s: %s at %s", sv.id, type(err).__name__,
                  events.where(err))
        event.status, event.code, event.message = "error", INTERNAL_ERROR, internal_error_message(err)
    if event.status == "applied" and entity is not None:
        # After-effects (case work's closure by a form, the duplicate check): app/services/effects.py.
        events.announce(events.ChildChanged(session, entity, sv, created=bool(block.create) and entity.version == 1,
                                            answers=data.values))
    session.add(event)
    session.flush()
    if ds is not None:
        _force_old_backlog_now_and_then(session, project_id, ds)
    return event


def process_all(session: Session, project_id: int, sv: SubmissionVersion, schema: FormSchema,
                block: EntityBlock | None, data: SubmissionData, *, check_scope: bool = True) -> list[EntityEvent]:
    """Apply every entity block of the submission, in document order: the top-level one (`block`), and with
    the entities spec 2025.1 one per instance of a repeat that declares an entity (a household form that
    registers several siblings). Each block goes through `process_submission` on its own — the same list
    lock, held-for-review and conflict rules, its own entity_event — with the properties and answers of
    its repeat instance."""
    if not any(d.repeat for d in schema.entities):
        event = process_submission(session, project_id, sv, schema, block, data, check_scope=check_scope)
        return [event] if event is not None else []
    out = []
    for scope in _scopes(sv, schema, data):
        event = process_submission(session, project_id, sv, replace(schema, entity=scope.declaration), scope.block,
                                   replace(data, entity_properties=scope.properties, values=scope.values),
                                   check_scope=check_scope)
        if event is not None:
            out.append(event)
    return out


def _scopes(sv: SubmissionVersion, schema: FormSchema, data: SubmissionData | None = None) -> list[EntityScope]:
    _envelope, tree = parse_submission(sv.xml, max_bytes=max(len(sv.xml), 1))
    return entity_scopes(tree, schema, data if data is not None else extract(tree, schema))


def scope_of(sv: SubmissionVersion, schema: FormSchema, uid: str | None,
             data: SubmissionData | None = None) -> EntityScope | None:
    """The entity block of the submission that names this entity (None: no such block)."""
    for scope in _scopes(sv, schema, data):
        if scope.block is not None and scope.block.uuid == uid:
            return scope
    return None


def _props(block: EntityBlock, data: SubmissionData) -> dict[str, Any]:
    return {k: ("" if v is None else str(v)) for k, v in data.entity_properties.items() if k != "label"}


def _apply(session: Session, ds: Dataset | None, sv: SubmissionVersion, schema: FormSchema, block: EntityBlock,
           data: SubmissionData, force: bool = False, target: Entity | None = None) -> Entity:
    """Apply one entity block; `ds` is the list named in the block, locked by the caller (or None); `target`
    the entity it updates when the caller has read it under that lock already."""
    if ds is None:
        raise EntityProblem(problems.ENTITY_LIST_MISSING(dataset=block.dataset[:100]))
    uid = normalize_uuid(block.entity_id)
    if uid is None:  # the value itself is not repeated: it may be anything the form put there
        raise EntityProblem(problems.ENTITY_ID_NOT_UUID())
    if block.branch_id is not None and len(block.branch_id) > 36:
        raise EntityProblem(problems.BRANCH_ID_NOT_UUID())
    if block.update and not schema.entity.update:  # type: ignore[union-attr]
        raise EntityProblem(problems.FORM_MAY_NOT_UPDATE_ENTITIES())
    if block.create and not schema.entity.create:  # type: ignore[union-attr]
        raise EntityProblem(problems.FORM_MAY_NOT_CREATE_ENTITIES())
    received = _props(block, data)
    if block.update:
        entity = target or session.scalar(_ENTITY, {"ds": ds.id, "uid": uid})
        if not block.create and entity is not None and entity.merged_into:
            # The child was merged into another file: the update (made on a phone before the merge
            # reached it) goes to the survivor, on top of its current version.
            survivor = session.scalar(select(Entity).where(Entity.dataset_id == ds.id,
                                                           Entity.uuid == entity.merged_into))
            if survivor is not None:
                entity, force = survivor, True
                sub = session.get(Submission, sv.submission_id)
                if sub is not None:
                    sub.entity_uuid = survivor.uuid
        if entity is not None and (block.base_version is not None or force):
            return _update(session, ds, entity, sv, block, received, force)
        if not block.create:
            if entity is not None:
                raise EntityProblem(problems.UPDATE_WITHOUT_BASE_VERSION())
            if block.branch_id and not force:
                raise HoldForBacklog(uid)  # registered offline on the same phone; registration not here yet
            raise EntityProblem(problems.ENTITY_NOT_IN_LIST(uid=uid, dataset=ds.name))
        taken, waiting = entity is not None, bool(session.scalar(_WAITING, {"uid": uid}))
    else:
        # One statement, as before: is the id taken, and does an offline update wait for it?
        taken, waiting = session.execute(_TAKEN_AND_WAITING, {"ds": ds.id, "uid": uid}).one()
    if not taken and session.scalar(_PURGED, {"ds": ds.id, "uid": uid}):
        raise EntityProblem(problems.UUID_OF_DELETED_ENTITY(uid=uid))
    if taken:
        raise EntityProblem(problems.ENTITY_EXISTS(uid=uid))
    entity = _create(session, ds, uid, sv, block, received)
    if waiting:
        _drain_backlog(session, ds.project_id, EntityEvent.entity_uuid == uid)
    return entity


def _create(session: Session, ds: Dataset, uid: str, sv: SubmissionVersion, block: EntityBlock,
            received: dict[str, Any]) -> Entity:
    label = (block.label or "").strip()
    if not label:
        raise EntityProblem(problems.NEW_ENTITY_WITHOUT_LABEL())
    entity = Entity(dataset_id=ds.id, uuid=uid, label=label, version=1, data=dict(received),
                    region_code=region_of(received))
    session.add(entity)
    session.flush()
    session.add(EntityVersion(entity_id=entity.id, version=1, label=label, data=dict(received),
                              data_received=dict(received), submission_id=sv.submission_id,
                              submission_version_id=sv.id, branch_id=block.branch_id,
                              trunk_version=block.trunk_version, base_version=None,
                              branch_base_version=None))
    ds.revision = (ds.revision or 0) + 1
    return entity


def _versions(session: Session, entity: Entity, numbers: set[int],
              branch_step: tuple[str, int] | None) -> dict[int, EntityVersion]:
    """The entity's versions with these numbers, and the one of an offline branch at a step (branch id,
    branch base version) — not the whole history, which grows with every visit to the child."""
    if branch_step is None:
        rows = session.scalars(_VERSIONS, {"entity_id": entity.id, "numbers": sorted(numbers)})
    else:
        rows = session.scalars(_VERSIONS_AND_STEP, {"entity_id": entity.id, "numbers": sorted(numbers),
                                                    "branch": branch_step[0], "step": branch_step[1]})
    return {v.version: v for v in rows}


def _update(session: Session, ds: Dataset, entity: Entity, sv: SubmissionVersion, block: EntityBlock,
            received: dict[str, Any], force: bool) -> Entity:
    if entity.deleted_at is not None:
        raise EntityProblem(problems.ENTITY_DELETED(uid=entity.uuid))
    base_version = block.base_version
    branch = block.branch_id if block.trunk_version is not None else None
    # A later update of an offline branch is based on the branch's previous step, found by its base version.
    branch_step = ((branch, (base_version or 0) - 1)
                   if not force and branch is not None and base_version != block.trunk_version else None)
    versions = _versions(session, entity, {entity.version} | ({base_version} if base_version is not None else set()),
                         branch_step)
    if force:
        base = versions[entity.version]
    elif branch is None or base_version == block.trunk_version:
        # Online update, or the first update of an offline branch: based on a server version.
        if base_version not in versions:
            raise EntityProblem(problems.ENTITY_VERSION_MISSING(version=base_version, uid=entity.uuid))
        base = versions[base_version]  # type: ignore[index]
    else:
        # A later update of an offline branch: based on the branch's previous update.
        prev = next((v for v in versions.values()
                     if v.branch_id == branch and v.branch_base_version == (base_version or 0) - 1), None)
        if prev is None:
            raise HoldForBacklog()
        base = prev
    if block.trunk_version is not None and block.trunk_version > entity.version:
        raise EntityProblem(problems.TRUNK_VERSION_TOO_NEW(version=block.trunk_version))

    current = versions[entity.version]
    conflict: str | None = None
    conflicting: list[str] = []
    if base.version != current.version:
        # Versions made since the base, all by this branch: its own chain, not a conflict.
        same_branch = branch is not None and all(b == branch for b in session.scalars(
            select(EntityVersion.branch_id).where(EntityVersion.entity_id == entity.id,
                                                  EntityVersion.version > base.version,
                                                  EntityVersion.version <= current.version)))
        if not same_branch:
            changed_on_server = {k for k in set(base.data) | set(current.data)
                                 if base.data.get(k) != current.data.get(k)}
            conflicting = sorted(k for k, v in received.items()
                                 if k in changed_on_server and current.data.get(k) != v)
            conflict = "hard" if conflicting else "soft"
    new_data = dict(current.data)
    new_data.update(received)
    label = (block.label or "").strip() or current.label
    entity.version = current.version + 1
    entity.label = label
    entity.data = new_data
    entity.region_code = region_of(new_data) or entity.region_code
    entity.updated_at = utcnow()
    if conflict and (entity.conflict != "hard"):
        entity.conflict = conflict
    session.add(EntityVersion(
        entity_id=entity.id, version=entity.version, label=label, data=new_data, data_received=dict(received),
        submission_id=sv.submission_id, submission_version_id=sv.id, base_version=base_version,
        trunk_version=block.trunk_version, branch_id=branch, branch_base_version=base_version if branch else None,
        conflict=conflict, conflicting_properties=conflicting or None,
    ))
    ds.revision = (ds.revision or 0) + 1
    session.flush()
    return entity


def _drain_backlog(session: Session, project_id: int, which: ColumnElement[bool] | None) -> None:
    """Apply held updates (of one branch, or waiting for one entity) whose predecessor has now arrived.

    Runs with the list locked (after `_apply`), so the held events read here are all there are."""
    if which is None:
        return
    held = session.scalars(select(EntityEvent).where(EntityEvent.status == "backlog", which)
                           .order_by(EntityEvent.id)).all()
    progress = True
    while held and progress:
        progress = False
        for event in list(held):
            if _retry(session, project_id, event, force=False):
                held.remove(event)
                progress = True


def _retry(session: Session, project_id: int, event: EntityEvent, force: bool) -> bool:
    """Try a held update again; True when it is no longer held (applied, failed, or done meanwhile)."""

    # The list first, then the event as committed: another request may have applied it meanwhile.
    ds = lock_dataset(session, project_id, event.dataset)
    session.refresh(event)
    if event.status != "backlog":
        return True
    sv = session.get(SubmissionVersion, event.submission_version_id)
    if sv is None:
        return False
    fv = session.get(FormVersion, sv.form_version_id)
    assert fv is not None
    schema = schema_of(fv)
    envelope, tree = parse_submission(sv.xml, max_bytes=max(len(sv.xml), 1))
    data = extract(tree, schema)
    block = envelope.entity
    if any(d.repeat for d in schema.entities):  # several blocks: the one this event is about
        scope = scope_of(sv, schema, event.entity_uuid, data)
        if scope is None:
            gone = problems.ENTITY_NOT_IN_LIST(uid=event.entity_uuid or "", dataset=event.dataset)
            event.status, event.code, event.message = "error", gone.code, gone.message
            return True
        schema, block = replace(schema, entity=scope.declaration), scope.block
        data = replace(data, entity_properties=scope.properties, values=scope.values)
    try:
        with session.begin_nested():
            entity = _apply(session, ds, sv, schema, block, data, force=force)  # type: ignore[arg-type]
    except HoldForBacklog:
        return False
    except EntityProblem as err:
        event.status, event.code, event.message = "error", err.code, err.message
        return True
    event.status = "applied"
    event.entity_uuid = entity.uuid
    event.message = "applied after its predecessor arrived" if not force else \
        "applied out of order: its predecessor never arrived"
    return True


def force_old_backlog(session: Session, project_id: int, older_than: timedelta = BACKLOG_FORCE_AFTER,
                      dataset: str | None = None) -> int:
    """Apply held offline updates older than the limit on top of the current version."""
    cutoff = utcnow() - older_than
    q = select(EntityEvent).where(EntityEvent.status == "backlog", EntityEvent.created_at < cutoff)
    if dataset is not None:
        q = q.where(EntityEvent.dataset == dataset)
    held = session.scalars(q.order_by(EntityEvent.id)).all()
    return sum(1 for event in held if _retry(session, project_id, event, force=True))


# When this process last looked for held updates past BACKLOG_FORCE_AFTER, per database and list.
_FORCE_CHECKED: dict[tuple[str, int], float] = {}
FORCE_CHECK_EVERY = 600.0  # seconds


def force_due(database: str, dataset_id: int, mark: bool = True) -> bool:
    """Whether this process should look for old held updates of the list now (`database`: its engine's URL as
    str() gives it); `mark`: and remember that it did (app/services/children/lean.py only peeks)."""
    key = (database, dataset_id)
    now = time.monotonic()
    last = _FORCE_CHECKED.get(key)
    if last is not None and now - last < FORCE_CHECK_EVERY:
        return False
    if mark:
        _FORCE_CHECKED[key] = now
    return True


def _force_old_backlog_now_and_then(session: Session, project_id: int, ds: Dataset) -> None:
    """Held updates whose predecessor never came are applied after BACKLOG_FORCE_AFTER. Nothing
    schedules jobs here, so an entity change of the list does it, at most every FORCE_CHECK_EVERY
    seconds per process, under the list's lock it holds already (no statement most of the time)."""
    if not force_due(str(session.get_bind().engine.url), ds.id):
        return
    try:
        with session.begin_nested():
            forced = force_old_backlog(session, project_id, dataset=ds.name)
    except Exception as err:
        if is_retryable(err):
            raise
        log.error("forcing old held entity updates failed: %s at %s", type(err).__name__, events.where(err))
        return
    if forced:
        log.info("applied %d held entity update(s) of list %s whose predecessor never arrived", forced, ds.name)
