"""Reading submissions (records) with role and region checks."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Problem
from app.models import Form, Submission, SubmissionAttachment, SubmissionVersion, User

from . import access


def get_record(session: Session, project_id: int, user: User, xml_form_id: str, instance_id: str
               ) -> tuple[Submission, SubmissionVersion]:
    """A submission by (form, instanceID), or 404 — also outside the user's regions."""
    access.require_reader(user)
    row = session.execute(
        select(Submission, SubmissionVersion)
        .join(Form, Form.id == Submission.form_id)
        .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
        .where(Form.project_id == project_id, Form.xml_form_id == xml_form_id,
               Submission.instance_id == instance_id, Submission.deleted_at.is_(None))).first()
    if row is None or not access.sees_region(user, row[0].region_code):
        raise Problem(404, "404.1", "There is no such submission in your regions.")
    return row[0], row[1]


def get_attachment(session: Session, project_id: int, user: User, xml_form_id: str, instance_id: str,
                   name: str) -> SubmissionAttachment:
    _, version = get_record(session, project_id, user, xml_form_id, instance_id)
    att = next((a for a in version.attachments if a.name == name), None)
    if att is None or att.blob_key is None:
        raise Problem(404, "404.1", f"The submission has no file '{name}' (or it has not arrived yet).")
    return att
