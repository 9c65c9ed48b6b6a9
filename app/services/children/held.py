"""Changes held for review: what a submission would do outside its submitter's regions.

A collector's submission is never refused for its scope (Collect would retry it forever and the
data would be lost). Its out-of-scope effects are stored as received and held instead: an
entity created or updated in a region the submitter does not cover (kind "entity"), or an edit
(deprecatedID) of a record outside the submitter's regions (kind "edit"). Nothing held is
applied, shown as current, or sent to any phone, until a coordinator (or admin) whose scope
covers every region the change touches applies it — through the same entity code path a
submission takes — or rejects it. Both decisions are audited. Deciding locks the row, so two
coordinators deciding at once get one decision and one 409.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Problem
from app.models import EntityEvent, Form, HeldChange, Submission, SubmissionVersion, User, utcnow
from app.services import audit
from app.services.access import policy as access

AWAITS_REVIEW = ("It changes a record outside your regions, so a coordinator must review it before it takes effect. "
                 "You need not send it again.")


def hold(session: Session, *, project_id: int, kind: str, sv: SubmissionVersion, target: str,
         regions: list[str | None], reason: str) -> HeldChange:
    change = HeldChange(project_id=project_id, kind=kind, submission_id=sv.submission_id, version_id=sv.id,
                        target=target, regions=sorted({r or "" for r in regions}), reason=reason,
                        submitter_id=sv.submitter_id, status="pending", note="", details={})
    session.add(change)
    session.flush()
    return change


@dataclass
class HeldRow:
    id: int
    kind: str
    status: str
    target: str
    regions: list[str]
    reason: str
    created_at: datetime
    submitter: str | None
    form_id: str
    instance_id: str
    version_instance_id: str
    decided_by: str | None
    decided_at: datetime | None
    note: str

    def json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["created_at"] = self.created_at.isoformat()
        d["decided_at"] = self.decided_at.isoformat() if self.decided_at else None
        return d


def _may_decide(user: User, change: HeldChange) -> bool:
    return all(access.covers(user, r or None) for r in (change.regions or [""]))


def list_held(session: Session, project_id: int, user: User, status: str = "pending",
              limit: int = 200) -> list[HeldRow]:
    """Held changes the user may decide (every region they touch lies in the user's scope)."""
    access.require(user, "held.decide")
    q = (select(HeldChange, Form.xml_form_id, Submission.instance_id, SubmissionVersion.instance_id)
         .join(Submission, Submission.id == HeldChange.submission_id)
         .join(Form, Form.id == Submission.form_id)
         .join(SubmissionVersion, SubmissionVersion.id == HeldChange.version_id)
         .where(HeldChange.project_id == project_id).order_by(HeldChange.id.desc()))
    if status:
        q = q.where(HeldChange.status == status)
    rows = [r for r in session.execute(q) if _may_decide(user, r[0])][:limit]
    ids = {c.submitter_id for c, *_ in rows} | {c.decided_by_id for c, *_ in rows}
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_({i for i in ids if i}))).all())
    return [HeldRow(id=c.id, kind=c.kind, status=c.status, target=c.target, regions=list(c.regions or []),
                    reason=c.reason, created_at=c.created_at, submitter=names.get(c.submitter_id), form_id=fid,
                    instance_id=iid, version_instance_id=viid, decided_by=names.get(c.decided_by_id),
                    decided_at=c.decided_at, note=c.note)
            for c, fid, iid, viid in rows]


def pending_count(session: Session, project_id: int, user: User) -> int:
    if not access.can(user, "held.decide"):
        return 0
    return len(list_held(session, project_id, user))


def decide(session: Session, project_id: int, user: User, held_id: int, action: str, *, note: str = "",
           ip: str = "", via: str = "web") -> HeldChange:
    """Apply or reject one held change (locked; a second decision gets 409)."""
    access.require(user, "held.decide")
    change = session.scalar(select(HeldChange).where(HeldChange.id == held_id, HeldChange.project_id == project_id)
                            .with_for_update())
    if change is None or not _may_decide(user, change):
        raise Problem(404, "404.80", "There is no such held change in your regions.")
    if action not in ("apply", "reject"):
        raise Problem(400, "400.80", "Choose 'apply' or 'reject'.")
    if len(note) > 2000:
        raise Problem(400, "400.81", "The note is too long (at most 2000 characters).")
    if change.status != "pending":
        raise Problem(409, "409.80", f"This change was already {change.status}. Reload the list.")
    if action == "apply":
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
    return session.scalar(select(EntityEvent).where(EntityEvent.submission_version_id == change.version_id,
                                                    EntityEvent.status == "held").order_by(EntityEvent.id.desc()))


def _apply(session: Session, project_id: int, change: HeldChange) -> None:
    from app.services.children import entities
    from app.services.submissions import ingest as submissions

    if change.kind == "entity":
        event = _event(session, change)
        if event is None:
            raise Problem(409, "409.81", "The held entity change is no longer waiting. Reload the list.")
        entities.apply_held(session, project_id, event)
        return
    sv = session.get(SubmissionVersion, change.version_id)
    assert sv is not None
    submissions.apply_held_edit(session, project_id, sv)
