"""Changes held for review: what a submission would do outside its submitter's regions.

A collector's submission is never refused for its scope (Collect would retry it forever and the
data would be lost). Its out-of-scope effects are stored as received and held instead: an
entity created or updated in a region the submitter does not cover (kind "entity"), or an edit
(deprecatedID) of a record outside the submitter's regions (kind "edit"). Nothing held is
applied, shown as current, or sent to any phone, until a coordinator (or admin) whose scope
covers every region the change touches applies it — through the same entity code path a
submission takes — or rejects it (app.services.submissions.review). Both decisions are audited.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Form, FormVersion, HeldChange, Submission, SubmissionVersion, User
from app.services import access

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
    form_title: str
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


def may_decide(user: User, change: HeldChange) -> bool:
    """Whether the user's scope covers every region the held change touches."""
    return all(access.covers(user, r or None) for r in (change.regions or [""]))


def list_held(session: Session, project_id: int, user: User, status: str = "pending",
              limit: int = 200) -> list[HeldRow]:
    """Held changes the user may decide (every region they touch lies in the user's scope)."""
    access.require(user, "held.decide")
    q = (select(HeldChange, Form.xml_form_id, FormVersion.title, Submission.instance_id, SubmissionVersion.instance_id)
         .join(Submission, Submission.id == HeldChange.submission_id)
         .join(Form, Form.id == Submission.form_id)
         .outerjoin(FormVersion, FormVersion.id == Form.current_version_id)
         .join(SubmissionVersion, SubmissionVersion.id == HeldChange.version_id)
         .where(HeldChange.project_id == project_id).order_by(HeldChange.id.desc()))
    if status:
        q = q.where(HeldChange.status == status)
    rows = [r for r in session.execute(q) if may_decide(user, r[0])][:limit]
    ids = {c.submitter_id for c, *_ in rows} | {c.decided_by_id for c, *_ in rows}
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_({i for i in ids if i}))).all())
    return [HeldRow(id=c.id, kind=c.kind, status=c.status, target=c.target, regions=list(c.regions or []),
                    reason=c.reason, created_at=c.created_at, submitter=names.get(c.submitter_id), form_id=fid,
                    form_title=title or fid, instance_id=iid, version_instance_id=viid,
                    decided_by=names.get(c.decided_by_id), decided_at=c.decided_at, note=c.note)
            for c, fid, title, iid, viid in rows]


def pending_count(session: Session, project_id: int, user: User) -> int:
    if not access.can(user, "held.decide"):
        return 0
    return len(list_held(session, project_id, user))
