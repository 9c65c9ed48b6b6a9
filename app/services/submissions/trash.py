"""The submissions' trash: deleting a record, restoring it, and purging it 30 days after deletion.

As ODK Central (2024.3+): a deleted submission keeps its rows with `deleted_at` set and leaves every list,
page, export, OData feed, generated SQL view, report and dashboard (they all read `deleted_at IS NULL`);
a phone sending it again is refused (409.18). Within TRASH_DAYS it can be restored as it was. After that,
`carefile purge` (or a forced purge) removes it with all its versions, repeat rows, files' rows, comments,
entity events and held changes; its stored files are then deleted by the purge's sweep of unreferenced
files. What its entity block did to a child stays (the child's history keeps the version, without the
link to the purged record), as in Central.

Only coordinators and admins delete and restore (access policy verb `trash.manage`), and only records
they see (their regions); others answer 404.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from app import problems
from app.models import Form, Submission, SubmissionAttachment, SubmissionVersion, User, utcnow
from app.services import access, audit
from app.services.children.trash import TRASH_DAYS, purge_due
from app.services.submissions import records


def target(xml_form_id: str, instance_id: str) -> str:
    return f"submission:{xml_form_id}/{instance_id}"


def delete_submission(session: Session, project_id: int, user: User, xml_form_id: str, instance_id: str, *,
                      ip: str = "") -> Submission:
    """Move the record to the trash; 404 when absent, deleted already or outside the user's regions."""
    access.require(user, "trash.manage")
    if project_id != user.project_id:
        raise problems.NO_SUCH_SUBMISSION_IN_REGIONS()
    sub, _ = records.get_record(session, project_id, user, xml_form_id, instance_id)
    sub = session.scalar(select(Submission).where(Submission.id == sub.id, Submission.deleted_at.is_(None))
                         .with_for_update().execution_options(populate_existing=True))
    if sub is None:  # deleted meanwhile
        raise problems.NO_SUCH_SUBMISSION_IN_REGIONS()
    sub.deleted_at = utcnow()
    audit.record(session, user, "submission.delete", target=target(xml_form_id, instance_id), ip=ip,
                 form=xml_form_id)
    session.flush()
    return sub


def _trashed_query(project_id: int, user: User) -> Select[Any]:
    return (select(Submission, Form.xml_form_id, SubmissionVersion)
            .join(Form, Form.id == Submission.form_id)
            .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
            .where(Form.project_id == project_id, Submission.deleted_at.is_not(None),
                   access.submission_filter(user, project_id)))


def restore_submission(session: Session, project_id: int, user: User, xml_form_id: str, instance_id: str, *,
                       ip: str = "") -> Submission:
    """Take the record out of the trash, as it was; 404 when it is not in the trash of the user's regions."""
    access.require(user, "trash.manage")
    if project_id != user.project_id:
        raise problems.NO_SUCH_SUBMISSION_IN_REGIONS()
    q = _trashed_query(project_id, user).where(Form.xml_form_id == xml_form_id,
                                               Submission.instance_id == instance_id)
    row = session.execute(q.with_for_update(of=Submission)).first()
    if row is None:
        raise problems.NO_SUCH_DELETED_SUBMISSION()
    sub = row[0]
    sub.deleted_at = None
    audit.record(session, user, "submission.restore", target=target(xml_form_id, instance_id), ip=ip,
                 form=xml_form_id)
    session.flush()
    return sub


@dataclass
class TrashedRecord:
    xml_form_id: str
    instance_id: str
    instance_name: str | None
    submitted_at: datetime
    deleted_at: datetime
    purge_on: datetime | None


def trashed(session: Session, project_id: int, user: User, xml_form_id: str | None = None,
            limit: int = 500) -> list[TrashedRecord]:
    """Deleted records the user sees, newest deletion first; instance names masked as on every list."""
    access.require(user, "trash.manage")
    q = _trashed_query(project_id, user)
    if xml_form_id:
        q = q.where(Form.xml_form_id == xml_form_id)
    names = records.InstanceNames(session, user, project_id)
    rows = session.execute(q.order_by(Submission.deleted_at.desc(), Submission.id).limit(limit))
    return [TrashedRecord(xml_id, sub.instance_id, names(sv), sub.created_at, sub.deleted_at, purge_due(sub.deleted_at))
            for sub, xml_id, sv in rows]


def purge(session: Session, *, now: datetime | None = None, force: bool = False, project_id: int | None = None,
          xml_form_id: str | None = None, instance_id: str | None = None) -> tuple[int, set[str]]:
    """Remove records deleted more than TRASH_DAYS ago (force: every record in the trash), optionally of one
    project, form or record. Returns how many, and the keys of their stored files: the caller deletes
    those no other row refers to after the commit (app/services/ops/purge.py)."""
    q = select(Submission.id).join(Form, Form.id == Submission.form_id).where(Submission.deleted_at.is_not(None))
    if not force:
        q = q.where(Submission.deleted_at < (now or utcnow()) - timedelta(days=TRASH_DAYS))
    if project_id is not None:
        q = q.where(Form.project_id == project_id)
    if xml_form_id is not None:
        q = q.where(Form.xml_form_id == xml_form_id)
    if instance_id is not None:
        q = q.where(Submission.instance_id == instance_id)
    ids = list(session.scalars(q.with_for_update(of=Submission)))
    keys: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        keys |= {k for k in session.scalars(
            select(SubmissionAttachment.blob_key).join(SubmissionVersion,
                                                       SubmissionVersion.id == SubmissionAttachment.version_id)
            .where(SubmissionVersion.submission_id.in_(chunk), SubmissionAttachment.blob_key.is_not(None))) if k}
        # The row's pointer at its current version first (a cycle of keys); the rest follows by ON DELETE
        # CASCADE (versions, repeat rows, files' rows, comments, entity events, held changes) and SET NULL
        # (the children's versions and directory rows that came from the record).
        session.execute(update(Submission).where(Submission.id.in_(chunk)).values(current_version_id=None)
                        .execution_options(synchronize_session=False))
        session.execute(delete(SubmissionVersion).where(SubmissionVersion.submission_id.in_(chunk))
                        .execution_options(synchronize_session=False))
        session.execute(delete(Submission).where(Submission.id.in_(chunk)).execution_options(synchronize_session=False))
    if ids:
        audit.record(session, None, "submission.purge", target="submissions", username="carefile purge",
                     submissions=len(ids))
    session.flush()
    return len(ids), keys
