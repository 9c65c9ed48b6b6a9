"""Fill and edit in the browser with ODK Web Forms: paper entry and edits of a submission.

- Paper entry (`/forms/<id>/fill`): admins, coordinators and managers fill the published form for
  the children of their regions. The form's files resolve through the renderer's attachment
  callback with the signed-in user's scope (children.csv holds only their regions' children, as
  their phone would get it). The submission takes Collect's ingest path
  (app.services.submissions.ingest.receive_submission: same validation, entities, held-for-review rules),
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
from sqlalchemy.orm import Session

from app import problems
from app.blobhttp import file_response
from app.errors import Problem
from app.i18n import t
from app.models import User
from app.routeaccess import READERS, declare
from app.runtime import runtime
from app.services import audit
from app.services.forms.files import FormFile
from app.services.submissions import ingest as submission_service
from app.services.submissions import web_entry
from app.services.submissions.web_entry import EDITORS

from . import bp, client_ip, csrf_token, db_user, requires
from .form_drafts import try_csp, web_forms_vendored

FILLERS = READERS


def _user(s: Session) -> User:
    user = s.get(User, db_user().id)
    if user is None:
        raise problems.ACCOUNT_NO_LONGER_EXISTS()
    return user


def _file_response(f: FormFile) -> Any:
    return file_response(runtime(), f, cache="private, no-store")


def _xml(xml: bytes) -> Any:
    return current_app.response_class(xml, content_type="application/xml; charset=utf-8",
                                      headers={"Cache-Control": "private, no-store"})


def _page(template: str, **ctx: Any) -> Any:
    html = render_template(template, vendored=web_forms_vendored(), **ctx)
    return html, 200, {"Cache-Control": "no-store", "Content-Security-Policy": try_csp()}


def _base(endpoint: str, **values: Any) -> str:
    return url_for(endpoint, filename="x", **values)[:-1]


# ---------------------------------------------------------------- paper entry

@bp.get("/forms/<xml_form_id>/fill")
@declare(FILLERS, scoped=True, note="the form's entity list holds only the children of the user's regions")
@requires(*FILLERS)
def fill_form(xml_form_id: str) -> Any:
    with runtime().db.session() as s:
        form, fv = web_entry.fillable(s, _user(s), xml_form_id)
        web_entry.require_open(form)
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
        _, fv = web_entry.fillable(s, _user(s), xml_form_id)
        xml = fv.xml
    return _xml(xml)


@bp.get("/forms/<xml_form_id>/fill/files/<filename>")
@declare(FILLERS, scoped=True, note="entity lists hold only the children of the signed-in user's regions")
@requires(*FILLERS)
def fill_form_file(xml_form_id: str, filename: str) -> Any:
    with runtime().db.session() as s:
        user = _user(s)
        _, fv = web_entry.fillable(s, user, xml_form_id)
        got = web_entry.form_file(s, user, fv, filename)
    return _file_response(got)


@bp.post("/forms/<xml_form_id>/fill/submission")
@declare(FILLERS, scoped=True, note="Collect's ingest: effects outside the user's regions are held for review")
@requires(*FILLERS)
def fill_submit(xml_form_id: str) -> Any:
    """The renderer's submission (multipart, as Collect sends it): paper entry or an edit. Answers JSON
    (the page's script shows the message), refusals included."""
    try:
        return _submit(xml_form_id)
    except Problem as problem:
        return jsonify(code=problem.code, message=problem.translated(t)), problem.status


def _submit(xml_form_id: str) -> Any:
    rt = runtime()
    xml_part = request.files.get("xml_submission_file")
    if xml_part is None:
        raise problems.SUBMISSION_NO_FORM_DATA()
    xml = xml_part.read()
    incoming = [submission_service.IncomingFile(name=part.filename or name, stream=part.stream,
                                                content_type=part.mimetype)
                for name, part in request.files.items(multi=True) if name != "xml_submission_file"]
    with rt.db.session() as s:
        user = _user(s)
        form, _ = web_entry.fillable(s, user, xml_form_id)
        s.expunge(user)
    if web_entry.deprecated_id(xml):
        web_entry.require_editor(user)

    result = submission_service.receive_submission(
        rt.db, rt.store, project_id=user.project_id, user=user, xml=xml, files=incoming,
        user_agent=request.headers.get("User-Agent"), max_file_bytes=rt.config["MAX_SUBMISSION_BYTES"],
        via="web", only_form=form.id)  # the XML names the form: it must be the one this page fills
    with rt.db.write() as s:
        action = "submission.web_edit" if result.status == "edited" else "submission.web_entry"
        audit.record(s, db_user(), action, f"submission:{xml_form_id}/{result.instance_id}", client_ip(),
                     status=result.status, held=result.held, files=sorted(f.name for f in incoming))
        version = web_entry.current_instance_id(s, result.submission_id)
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

@bp.get("/submissions/<form_id>/<instance_id>/edit")
@declare(EDITORS, scoped=True)
@requires(*EDITORS)
def edit_submission(form_id: str, instance_id: str) -> Any:
    with runtime().db.session() as s:
        form, sv, fv = web_entry.editable(s, _user(s), form_id, instance_id)
        web_entry.require_open(form)
        names = [a.name for a in sv.attachments if a.blob_key]
        title, version_id = fv.title, sv.instance_id
    ids: dict[str, Any] = {"form_id": form_id, "instance_id": instance_id}
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
        _, _, fv = web_entry.editable(s, _user(s), form_id, instance_id)
        xml = fv.xml
    return _xml(xml)


@bp.get("/submissions/<form_id>/<instance_id>/edit/form-files/<filename>")
@declare(EDITORS, scoped=True, note="entity lists hold only the children of the signed-in user's regions")
@requires(*EDITORS)
def edit_submission_form_file(form_id: str, instance_id: str, filename: str) -> Any:
    with runtime().db.session() as s:
        user = _user(s)
        _, _, fv = web_entry.editable(s, user, form_id, instance_id)
        got = web_entry.form_file(s, user, fv, filename)
    return _file_response(got)


@bp.get("/submissions/<form_id>/<instance_id>/edit/instance.xml")
@declare(EDITORS, scoped=True)
@requires(*EDITORS)
def edit_submission_instance(form_id: str, instance_id: str) -> Any:
    with runtime().db.write() as s:
        user = _user(s)
        _, sv, _ = web_entry.editable(s, user, form_id, instance_id)
        xml = sv.xml
        audit.record(s, user, "submission.view", target=f"submission:{form_id}/{instance_id}", ip=client_ip(),
                     unmasked=True, purpose="edit")
    return _xml(xml)


@bp.get("/submissions/<form_id>/<instance_id>/edit/files/<filename>")
@declare(EDITORS, scoped=True)
@requires(*EDITORS)
def edit_submission_file(form_id: str, instance_id: str, filename: str) -> Any:
    """A file of the current version, handed to the renderer so the edit starts with it."""
    with runtime().db.write() as s:
        user = _user(s)
        _, sv, _ = web_entry.editable(s, user, form_id, instance_id)
        got = web_entry.version_file(sv, filename)
        audit.record(s, user, "attachment.download", target=f"submission:{form_id}/{instance_id}/{filename}",
                     ip=client_ip(), purpose="edit")
    return _file_response(got)
