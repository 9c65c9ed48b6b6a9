"""Fill and edit in the browser with ODK Web Forms: paper entry and edits of a submission.

- Paper entry (`/forms/<id>/fill`): admins, coordinators and managers fill the published form for
  the children of their regions. The form's files resolve through the renderer's attachment
  callback with the signed-in user's scope (children.csv holds only their regions' children, as
  their phone would get it). The submission takes Collect's ingest path
  (app.services.submissions.receive_submission: same validation, entities, held-for-review rules),
  attributed to the web user. Managers may enter paper forms here but still not submit from Collect.
- Edit (`/submissions/<form>/<instance>/edit`): admins and coordinators, for records they see
  (others get 404). Web Forms' edit-instance mode loads the current version's XML and files and
  sends a new instance with meta/deprecatedID; the ingest makes it the new current version and
  keeps the files it does not re-send. Managers do not edit: an edit shows every answer, sensitive
  ones included, which managers may not see.

Every POST carries the CSRF token (X-CSRF-Token header) and is audited.
"""
from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.blobhttp import blob_response
from app.errors import Problem
from app.i18n import t
from app.models import Form, FormVersion, Submission, SubmissionVersion, User
from app.routeaccess import COORDINATORS, READERS, declare
from app.runtime import runtime
from app.services import access, audit, regions
from app.services import entities as entity_service
from app.services import forms as form_service
from app.services import submissions as submission_service

from . import bp, client_ip, csrf_token, db_user, requires
from .form_drafts import TRY_CSP, web_forms_vendored

FILLERS = READERS
EDITORS = COORDINATORS


def _user(s: Session) -> User:
    user = s.get(User, db_user().id)
    if user is None:
        raise Problem(403, "403.1", t("Your account no longer exists. Sign in again."))
    return user


def _fillable(s: Session, user: User, xml_form_id: str) -> tuple[Form, FormVersion]:
    form = form_service.get_form(s, user.project_id, xml_form_id)
    if not form_service.can_enter_on_web(user, form):
        raise Problem(403, "403.2", t("Your account may not fill forms in the browser."))
    fv = form.current_version
    if fv is None:
        raise Problem(404, "404.1", t("This form has no published version yet."))
    return form, fv


def _form_file(s: Session, user: User, fv: FormVersion, filename: str) -> Any:
    """A form's file as the user's own phone would receive it (entity lists and regions.csv scoped)."""
    att = next((a for a in fv.attachments if a.filename == filename), None)
    if att is not None and att.dataset is not None:
        data, md5 = entity_service.list_csv(s, user.project_id, att.dataset, user)
        return _private(current_app.response_class(data, content_type="text/csv; charset=utf-8"), md5)
    if att is None or att.blob_key is None or att.md5 is None:
        raise Problem(404, "404.1", t("This file has not been uploaded."))
    mine = regions.phone_copy(att.md5, user.region_codes) if att.filename == regions.FORM_CSV else None
    if mine is not None:
        return _private(current_app.response_class(mine[0], content_type="text/csv; charset=utf-8"), mine[1])
    return (att.blob_key, att.md5, att.content_type or "application/octet-stream")


def _private(resp: Any, etag: str) -> Any:
    resp.set_etag(etag)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


def _file_response(got: Any, filename: str) -> Any:
    if isinstance(got, tuple):
        key, md5, ctype = got
        return blob_response(runtime(), key, md5, filename, ctype)
    return got


def _page(template: str, **ctx: Any) -> Any:
    html = render_template(template, vendored=web_forms_vendored(), **ctx)
    return html, 200, {"Cache-Control": "no-store", "Content-Security-Policy": TRY_CSP}


def _base(endpoint: str, **values: str) -> str:
    return url_for(endpoint, filename="x", **values)[:-1]


# ---------------------------------------------------------------- paper entry

@bp.get("/forms/<xml_form_id>/fill")
@declare(FILLERS, scoped=True, note="the form's entity list holds only the children of the user's regions")
@requires(*FILLERS)
def fill_form(xml_form_id: str) -> Any:
    with runtime().db.session() as s:
        form, fv = _fillable(s, _user(s), xml_form_id)
        if form.state == "closed":
            raise Problem(409, "409.2", t("This form is closed and no longer accepts submissions."))
        title = fv.title
    config = {"formUrl": url_for("web.fill_form_xml", xml_form_id=xml_form_id),
              "attachmentBase": _base("web.fill_form_file", xml_form_id=xml_form_id),
              "submissionUrl": url_for("web.fill_submit", xml_form_id=xml_form_id),
              "csrf": csrf_token(), "edit": None}
    return _page("forms/fill.html", form=form, title=title, config=config, editing=None)


@bp.get("/forms/<xml_form_id>/fill/form.xml")
@declare(FILLERS)
@requires(*FILLERS)
def fill_form_xml(xml_form_id: str) -> Any:
    with runtime().db.session() as s:
        _, fv = _fillable(s, _user(s), xml_form_id)
        xml = fv.xml
    return current_app.response_class(xml, content_type="application/xml; charset=utf-8",
                                      headers={"Cache-Control": "private, no-store"})


@bp.get("/forms/<xml_form_id>/fill/files/<filename>")
@declare(FILLERS, scoped=True, note="entity lists hold only the children of the signed-in user's regions")
@requires(*FILLERS)
def fill_form_file(xml_form_id: str, filename: str) -> Any:
    with runtime().db.session() as s:
        user = _user(s)
        _, fv = _fillable(s, user, xml_form_id)
        got = _form_file(s, user, fv, filename)
    return _file_response(got, filename)


@bp.post("/forms/<xml_form_id>/fill/submission")
@declare(FILLERS, scoped=True, note="Collect's ingest: effects outside the user's regions are held for review")
@requires(*FILLERS)
def fill_submit(xml_form_id: str) -> Any:
    """The renderer's submission (multipart, as Collect sends it): paper entry or an edit. Answers JSON
    (the page's script shows the message), refusals included."""
    try:
        return _submit(xml_form_id)
    except Problem as problem:
        return jsonify(code=problem.code, message=t(problem.message)), problem.status


def _submit(xml_form_id: str) -> Any:
    rt = runtime()
    xml_part = request.files.get("xml_submission_file")
    if xml_part is None:
        raise Problem(400, "400.7", t("The submission has no form data. Reload the page and fill the form again."))
    xml = xml_part.read()
    incoming = [submission_service.IncomingFile(name=part.filename or name, stream=part.stream,
                                                content_type=part.mimetype)
                for name, part in request.files.items(multi=True) if name != "xml_submission_file"]
    with rt.db.session() as s:
        user = _user(s)
        form, _ = _fillable(s, user, xml_form_id)
        s.expunge(user)

    def may_fill(session: Session, got: Form) -> bool:
        # The XML names the form: it must be the one this page fills; an edit needs an editor.
        return got.id == form.id and form_service.can_enter_on_web(user, got)

    if _deprecated_id(xml) and user.role not in EDITORS:
        raise Problem(403, "403.1", t("Only coordinators and administrators edit submissions."))
    result = submission_service.receive_submission(
        rt.db, rt.store, project_id=user.project_id, user=user, xml=xml, files=incoming,
        user_agent=request.headers.get("User-Agent"), max_file_bytes=rt.config["MAX_SUBMISSION_BYTES"],
        may_fill=may_fill)
    with rt.db.write() as s:
        action = "submission.web_edit" if result.status == "edited" else "submission.web_entry"
        audit.record(s, db_user(), action, f"submission:{xml_form_id}/{result.instance_id}", client_ip(),
                     status=result.status, held=result.held, files=sorted(f.name for f in incoming))
        version = s.scalar(select(SubmissionVersion.instance_id).where(
            SubmissionVersion.submission_id == result.submission_id, SubmissionVersion.current.is_(True)))
    if result.held:
        message = t("Saved. Part of it lies outside your regions and waits for a coordinator's review.")
    elif result.status == "edited":
        message = t("The edit was saved as the record's new version.")
    elif result.status == "duplicate":
        message = t("This submission was already on the server.")
    else:
        message = t("The form was saved.")
    if result.missing_files:
        message += " " + t("Files still missing: {files}.", files=", ".join(result.missing_files))
    return jsonify(status=result.status, held=result.held, message=message, instance_id=result.instance_id,
                   version_instance_id=version,
                   url=url_for("web.submissions_view", form_id=xml_form_id, instance_id=result.instance_id)), 201


# ---------------------------------------------------------------- edit a submission

def _deprecated_id(xml: bytes) -> str | None:
    from forms import SubmissionXMLError, parse_submission

    try:
        envelope, _ = parse_submission(xml, max_bytes=max(len(xml), 1))
    except SubmissionXMLError:
        return None  # the ingest refuses it with its own clear message
    return envelope.deprecated_id  # type: ignore[attr-defined,no-any-return]


def _editable(s: Session, user: User, form_id: str, instance_id: str) -> tuple[Form, Submission, SubmissionVersion]:
    """The record and its current version, for an editor who sees it (404 otherwise: ids are not probed)."""
    form, _ = _fillable(s, user, form_id)
    sub = s.scalar(select(Submission).where(Submission.form_id == form.id, Submission.instance_id == instance_id,
                                            Submission.deleted_at.is_(None)))
    if sub is None or not access.sees_submission(s, user, user.project_id, sub):
        raise Problem(404, "404.1", t("No such submission."))
    sv = s.get(SubmissionVersion, sub.current_version_id) if sub.current_version_id else None
    if sv is None:
        raise Problem(404, "404.1", t("No such submission."))
    if sv.encrypted_file:
        raise Problem(409, "409.19", t("An encrypted submission cannot be edited on the server."))
    return form, sub, sv


@bp.get("/submissions/<form_id>/<instance_id>/edit")
@declare(EDITORS, scoped=True)
@requires(*EDITORS)
def edit_submission(form_id: str, instance_id: str) -> Any:
    with runtime().db.session() as s:
        form, sub, sv = _editable(s, _user(s), form_id, instance_id)
        if form.state == "closed":
            raise Problem(409, "409.2", t("This form is closed and no longer accepts submissions."))
        names = [a.name for a in sv.attachments if a.blob_key]
        fv = s.get(FormVersion, sv.form_version_id)
        assert fv is not None
        title, version_id = fv.title, sv.instance_id
    ids = {"form_id": form_id, "instance_id": instance_id}
    config = {"formUrl": url_for("web.edit_submission_form", **ids),
              "attachmentBase": _base("web.edit_submission_form_file", **ids),
              "submissionUrl": url_for("web.fill_submit", xml_form_id=form_id), "csrf": csrf_token(),
              "edit": {"instanceUrl": url_for("web.edit_submission_instance", **ids),
                       "fileBase": _base("web.edit_submission_file", **ids), "files": names}}
    return _page("forms/fill.html", form=form, title=title, config=config,
                 editing={"instance_id": instance_id, "version": version_id})


@bp.get("/submissions/<form_id>/<instance_id>/edit/form.xml")
@declare(EDITORS, scoped=True)
@requires(*EDITORS)
def edit_submission_form(form_id: str, instance_id: str) -> Any:
    """The form version the current version was filled with (its instance matches that definition)."""
    with runtime().db.session() as s:
        _, _, sv = _editable(s, _user(s), form_id, instance_id)
        fv = s.get(FormVersion, sv.form_version_id)
        assert fv is not None
        xml = fv.xml
    return current_app.response_class(xml, content_type="application/xml; charset=utf-8",
                                      headers={"Cache-Control": "private, no-store"})


@bp.get("/submissions/<form_id>/<instance_id>/edit/form-files/<filename>")
@declare(EDITORS, scoped=True, note="entity lists hold only the children of the signed-in user's regions")
@requires(*EDITORS)
def edit_submission_form_file(form_id: str, instance_id: str, filename: str) -> Any:
    with runtime().db.session() as s:
        user = _user(s)
        _, _, sv = _editable(s, user, form_id, instance_id)
        fv = s.get(FormVersion, sv.form_version_id)
        assert fv is not None
        got = _form_file(s, user, fv, filename)
    return _file_response(got, filename)


@bp.get("/submissions/<form_id>/<instance_id>/edit/instance.xml")
@declare(EDITORS, scoped=True)
@requires(*EDITORS)
def edit_submission_instance(form_id: str, instance_id: str) -> Any:
    with runtime().db.write() as s:
        user = _user(s)
        _, _, sv = _editable(s, user, form_id, instance_id)
        xml = sv.xml
        audit.record(s, user, "submission.view", target=f"submission:{form_id}/{instance_id}", ip=client_ip(),
                     unmasked=True, purpose="edit")
    return current_app.response_class(xml, content_type="application/xml; charset=utf-8",
                                      headers={"Cache-Control": "private, no-store"})


@bp.get("/submissions/<form_id>/<instance_id>/edit/files/<filename>")
@declare(EDITORS, scoped=True)
@requires(*EDITORS)
def edit_submission_file(form_id: str, instance_id: str, filename: str) -> Any:
    """A file of the current version, handed to the renderer so the edit starts with it."""
    rt = runtime()
    with rt.db.write() as s:
        user = _user(s)
        _, _, sv = _editable(s, user, form_id, instance_id)
        att = next((a for a in sv.attachments if a.name == filename and a.blob_key), None)
        if att is None or att.blob_key is None or att.md5 is None:
            raise Problem(404, "404.1", t("This file has not been uploaded."))
        key, md5, ctype = att.blob_key, att.md5, att.content_type or "application/octet-stream"
        audit.record(s, user, "attachment.download", target=f"submission:{form_id}/{instance_id}/{filename}",
                     ip=client_ip(), purpose="edit")
    return blob_response(rt, key, md5, filename, ctype)
