"""Paper entry and edits in the browser (app/web/fill.py): which form and which record a web user
may fill or edit, and the files the renderer asks for, scoped like the user's own phone.

The submission itself goes through app.services.submissions.ingest.receive_submission, as Collect's do.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Problem
from app.models import Form, FormVersion, Submission, SubmissionVersion, User
from app.services import access
from app.services import forms as form_service
from app.services.forms import files
from app.services.forms.files import FormFile
from forms import SubmissionXMLError, parse_submission

EDITORS = ("admin", "coordinator")  # managers see sensitive answers masked, so they do not edit


def fillable(session: Session, user: User, xml_form_id: str) -> tuple[Form, FormVersion]:
    """The form and its current version, for a user who may fill forms in the browser."""
    form = form_service.get_form(session, user.project_id, xml_form_id)
    if not access.may_enter_on_web(user, form):
        raise Problem(403, "403.2", "Your account may not fill forms in the browser.")
    fv = form.current_version
    if fv is None:
        raise Problem(404, "404.1", "This form has no published version yet.")
    return form, fv


def require_open(form: Form) -> None:
    if form.state == "closed":
        raise Problem(409, "409.2", "This form is closed and no longer accepts submissions.")


def may_edit(user: User) -> bool:
    return bool(user.active) and user.role in EDITORS


def require_editor(user: User) -> None:
    if not may_edit(user):
        raise Problem(403, "403.1", "Only coordinators and administrators edit submissions.")


def deprecated_id(xml: bytes) -> str | None:
    """The meta/deprecatedID of a submission's XML (None when absent or unreadable: the ingest then
    refuses it with its own message)."""
    try:
        envelope, _ = parse_submission(xml, max_bytes=max(len(xml), 1))
    except SubmissionXMLError:
        return None
    value: str | None = envelope.deprecated_id  # type: ignore[attr-defined]
    return value


def editable(session: Session, user: User, xml_form_id: str,
             instance_id: str) -> tuple[Form, SubmissionVersion, FormVersion]:
    """The record's current version and the form version it was filled with, for an editor who sees
    the record (404 otherwise, so ids cannot be probed)."""
    require_editor(user)
    form, _ = fillable(session, user, xml_form_id)
    sub = session.scalar(select(Submission).where(Submission.form_id == form.id,
                                                  Submission.instance_id == instance_id,
                                                  Submission.deleted_at.is_(None)))
    if sub is None or not access.sees_submission(session, user, user.project_id, sub):
        raise Problem(404, "404.1", "No such submission.")
    sv = session.get(SubmissionVersion, sub.current_version_id) if sub.current_version_id else None
    if sv is None:
        raise Problem(404, "404.1", "No such submission.")
    if sv.encrypted_file:
        raise Problem(409, "409.19", "An encrypted submission cannot be edited on the server.")
    fv = session.get(FormVersion, sv.form_version_id)
    assert fv is not None
    return form, sv, fv


def current_instance_id(session: Session, submission_id: int) -> str | None:
    """The instanceID of the record's current version (after an edit: the edit's)."""
    return session.scalar(select(SubmissionVersion.instance_id).where(
        SubmissionVersion.submission_id == submission_id, SubmissionVersion.current.is_(True)))


def form_file(session: Session, user: User, fv: FormVersion, filename: str) -> FormFile:
    """A form's file for the browser's renderer: as the user's own phone would receive it (the children and
    places of the user's regions), with labels redacted as on every page (app.services.forms.files)."""
    return files.phone_file(session, user.project_id, fv.attachments, filename, user, web=True)


def version_file(sv: SubmissionVersion, filename: str) -> FormFile:
    """A stored file of the version being edited (handed to the renderer so the edit starts with it)."""
    att = next((a for a in sv.attachments if a.name == filename and a.blob_key), None)
    if att is None or att.blob_key is None or att.md5 is None:
        raise Problem(404, "404.1", "This file has not been uploaded.")
    return FormFile(filename, att.md5, att.content_type or "application/octet-stream", blob_key=att.blob_key)
