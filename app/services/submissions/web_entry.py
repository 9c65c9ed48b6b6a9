"""Paper entry and edits in the browser (app/web/fill.py): which form and which record a web user
may fill or edit, and the files the renderer asks for, scoped like the user's own phone.

The submission itself goes through app.services.submissions.ingest.receive_submission, as Collect's do.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
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
        raise problems.MAY_NOT_FILL_IN_BROWSER()
    fv = form.current_version
    if fv is None:
        raise problems.FORM_NOT_PUBLISHED_YET()
    return form, fv


def require_open(form: Form) -> None:
    if form.state == "closed":
        raise problems.FORM_CLOSED_TO_WEB_ENTRY()


def may_edit(user: User) -> bool:
    return bool(user.active) and user.role in EDITORS


def require_editor(user: User) -> None:
    if not may_edit(user):
        raise problems.SUBMISSIONS_EDITED_BY_COORDINATORS()


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
        raise problems.NO_SUCH_SUBMISSION()
    sv = session.get(SubmissionVersion, sub.current_version_id) if sub.current_version_id else None
    if sv is None:
        raise problems.NO_SUCH_SUBMISSION()
    if sv.encrypted_file:
        raise problems.ENCRYPTED_NOT_EDITABLE()
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
        raise problems.FILE_NOT_UPLOADED()
    return FormFile(filename, att.md5, att.content_type or "application/octet-stream", blob_key=att.blob_key)
