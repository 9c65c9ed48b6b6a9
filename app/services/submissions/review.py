"""Deciding changes held for review (app.services.children.held): apply one, or reject it.

Applying takes the same code path as if the submission had just arrived inside the coordinator's
regions: an entity change goes through entity processing, an edit becomes the record's current
version (app.services.submissions.ingest.apply_held_edit). Deciding locks the held row, so two
coordinators deciding at once get one decision and one 409. Both decisions are audited.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.models import EntityEvent, HeldChange, Submission, SubmissionVersion, User, utcnow
from app.services import access, audit
from app.services.children import entities
from app.services.children.held import may_decide
from app.services.submissions.ingest import apply_held_edit


def decide(session: Session, project_id: int, user: User, held_id: int, action: str, *, note: str = "",
           ip: str = "", via: str = "web") -> HeldChange:
    """Apply or reject one held change (locked; a second decision gets 409)."""
    access.require(user, "held.decide")
    change = session.scalar(select(HeldChange).where(HeldChange.id == held_id, HeldChange.project_id == project_id)
                            .with_for_update())
    if change is None or not may_decide(user, change):
        raise problems.NO_SUCH_HELD_CHANGE()
    if action not in ("apply", "reject"):
        raise problems.HELD_ACTION_UNKNOWN()
    if len(note) > 2000:
        raise problems.HELD_NOTE_TOO_LONG()
    if change.status != "pending":
        raise problems.HELD_ALREADY_DECIDED(status=change.status)
    if action == "apply":
        sub = session.get(Submission, change.submission_id)
        if sub is not None and sub.deleted_at is not None:
            raise problems.HELD_SUBMISSION_IN_TRASH()
        _apply(session, project_id, change)
    change.status = "applied" if action == "apply" else "rejected"
    change.decided_by_id, change.decided_at, change.note = user.id, utcnow(), note.strip()
    if action == "reject" and change.kind == "entity":
        event = _event(session, change)
        if event is not None:
            event.status, event.message = "rejected", "rejected by a coordinator (outside the submitter's regions)"
    audit.record(session, user, f"held.{action}", target=f"held:{change.id}", ip=ip, kind=change.kind,
                 submission=change.submission_id, regions=change.regions, via=via)
    session.flush()
    return change


def _event(session: Session, change: HeldChange) -> EntityEvent | None:
    """The held entity event of the change: of its entity, when the record holds several entity blocks (a
    household's siblings, entities spec 2025.1)."""
    q = select(EntityEvent).where(EntityEvent.submission_version_id == change.version_id,
                                  EntityEvent.status == "held")
    if change.target:
        q = q.where(EntityEvent.entity_uuid == change.target)
    return session.scalar(q.order_by(EntityEvent.id.desc()))


def _apply(session: Session, project_id: int, change: HeldChange) -> None:
    if change.kind == "entity":
        event = _event(session, change)
        if event is None:
            raise problems.HELD_NO_LONGER_WAITING()
        entities.apply_held(session, project_id, event)
        return
    sv = session.get(SubmissionVersion, change.version_id)
    assert sv is not None
    apply_held_edit(session, project_id, sv)
