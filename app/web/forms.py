"""Forms pages for coordinators: list, upload with preview then publish, versions, media files, state.

Publishing is two steps, as in ODK Central: the upload is compiled without publishing and the
preview shows errors (sheet and row), warnings and the questions; "Publish" then compiles the
same file again and publishes it. Between the steps the file waits in the blob store under its
sha256; the page carries that key with an HMAC bound to the user, so a client cannot make the
server publish any other stored file.
"""
from __future__ import annotations

import hashlib
import hmac
import io
from dataclasses import dataclass
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from app import problems
from app.blobhttp import blob_response
from app.errors import Problem
from app.i18n import form_label, t
from app.models import FORM_STATES, Form, FormDraft, FormVersion, Submission, User
from app.routeaccess import declare
from app.runtime import runtime
from app.services import access, audit
from app.services import forms as form_service
from app.services.ops import setup
from forms.diff import xls_type
from storage import BlobNotFound, BlobTooLarge

from . import bp, client_ip, db_user, register_nav, requires
from .inputs import uploaded_file

ROLES = ("admin", "coordinator")
register_nav(10, "web.forms_index", "Forms", ROLES)



def tr(message: str) -> str:
    """A message of forms/ or services/ in the UI language when the catalog knows it, else as it is.

    (forms.json translates the fixed ones: "ODK Validate passed", "This file is not an Excel workbook…".)
    """
    return t(message)


@dataclass
class Question:
    depth: int
    type: str
    name: str
    label: str
    relevant: str
    required: bool


_xls_type = xls_type  # the XLSForm type a coordinator wrote, guessed back from the XForm


def questions(xform: bytes) -> list[Question]:
    schema = form_service.parse_xform(xform)
    out = []
    for f in schema.fields:
        if f.meta:
            continue
        out.append(Question(depth=max(0, f.path.count("/") - 2), type=_xls_type(f), name=f.name,
                            label=form_label(f.labels), relevant=f.relevant or "", required=f.required))
    return out


def _sign(key: str, filename: str) -> str:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    msg = f"form-upload:{current_user.id}:{key}:{filename}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def _project_id() -> int:
    return int(current_user.project_id)


def _get_form(session: Any, xml_form_id: str) -> Form:
    form = session.scalar(select(Form).where(Form.project_id == _project_id(), Form.xml_form_id == xml_form_id))
    if form is None:
        raise problems.NO_SUCH_FORM()
    return form


def _conflict_message(form_id: str, version: str) -> str:
    return t("Form '{form_id}' version '{version}' is already published with different content. Phones cannot "
             "tell two such forms apart: change `version` in the settings sheet (for example to a higher number) "
             "and publish again.", form_id=form_id, version=version)


# ---------------------------------------------------------------- list

@bp.get("/forms")
@requires(*ROLES)
def forms_index() -> Any:
    rt = runtime()
    with rt.db.session() as s:
        forms = form_service.list_forms(s, _project_id())
        ids = [f.id for f in forms]
        subs = dict(s.execute(select(Submission.form_id, func.count()).where(
            Submission.form_id.in_(ids), Submission.deleted_at.is_(None)).group_by(Submission.form_id)).all())
        versions = dict(s.execute(select(FormVersion.form_id, func.count()).where(
            FormVersion.form_id.in_(ids)).group_by(FormVersion.form_id)).all())
        drafts = dict(s.execute(select(FormDraft.form_id, FormDraft.version).where(FormDraft.form_id.in_(ids))).all())
        rows: list[dict[str, Any]] = [{
            "form": f, "version": f.current_version, "versions": versions.get(f.id, 0),
            "submissions": subs.get(f.id, 0), "draft": drafts.get(f.id),
            "missing": form_service.missing_attachments(f.current_version) if f.current_version else [],
        } for f in forms]
    rows.sort(key=lambda r: ((r["version"].title if r["version"] else "") or r["form"].xml_form_id).lower())
    return render_template("forms/index.html", rows=rows, max_mb=_max_mb())


def _max_mb() -> int:
    return int(runtime().config["MAX_UPLOAD_BYTES"]) // (1024 * 1024)


# ---------------------------------------------------------------- upload → preview → publish

def _outbound_message(what: str, address: str) -> str:
    """A form that sends records to, or loads files from, another host (400.77), in the UI language."""
    if what == "submission":
        return t("This form would send its records to {address} (submission_url in the settings sheet, the action "
                 "of <submission>). Remove it: phones send records to this server.", address=address)
    if what == "instance":
        return t("This form would load a data file from {address}. Upload the file as one of the form's files "
                 "(jr://file/…) instead.", address=address)
    return t("This form would load a media file from {address}. Upload the file as one of the form's files "
             "(jr://images/…) instead.", address=address)


def _issue_rows(problem: Problem) -> list[dict[str, Any]]:
    issues = problem.details.get("issues") or [{"message": problem.message, "sheet": None, "row": None}]
    return [{**i, "message": _outbound_message(str(i["what"]), str(i.get("address", ""))) if "what" in i
             else tr(str(i["message"]))} for i in issues]


def _changeable_form(session: Any, xml_form_id: str) -> Form:
    """The form, when the signed-in user may change it (access.require_form_change)."""
    form = _get_form(session, xml_form_id)
    access.require_form_change(session, db_user(), form.project_id, form)
    return form


@bp.post("/forms/upload")
@requires(*ROLES)
def forms_upload() -> Any:
    rt = runtime()
    limit = int(rt.config["MAX_UPLOAD_BYTES"])
    try:
        data, filename = uploaded_file("file", limit)
    except Problem as problem:
        return render_template("forms/preview.html", filename="", errors=[
            {"message": problem.message, "sheet": None, "row": None}], max_mb=_max_mb()), problem.status
    try:
        compiled = form_service.compile_upload(data, filename, setup.validate_setting(rt))
        found = questions(compiled.xform)
    except Problem as problem:
        return render_template("forms/preview.html", filename=filename, errors=_issue_rows(problem),
                               max_mb=_max_mb()), 400
    info = rt.store.put(io.BytesIO(data), max_size=limit)
    plan, existing, taken, has_draft = "new", None, False, False
    with rt.db.session() as s:
        form = s.scalar(select(Form).where(Form.project_id == _project_id(), Form.xml_form_id == compiled.form_id))
        if form is not None and form.current_version is not None:
            # A form already on phones: the upload becomes its draft, tried before it is published.
            existing = form.current_version
            plan = "draft"
            taken = bool(compiled.version) and form_service.version_used(s, form, compiled.version)
            has_draft = form_service.get_draft(s, form) is not None
    return render_template(
        "forms/preview.html", filename=filename, errors=[], compiled=compiled, questions=found, plan=plan,
        existing=existing, key=info.key, sig=_sign(info.key, filename),
        warnings=[{"sheet": i.sheet, "row": i.row, "message": tr(i.message)} for i in compiled.warning_issues]
        or [{"sheet": None, "row": None, "message": tr(w)} for w in compiled.warnings],
        note=tr(compiled.validation_note), taken=taken, has_draft=has_draft, max_mb=_max_mb())


@bp.post("/forms/publish")
@requires(*ROLES)
def forms_publish() -> Any:
    rt = runtime()
    key, filename = request.form.get("key", ""), request.form.get("filename", "")
    if not hmac.compare_digest(request.form.get("sig", ""), _sign(key, filename)):
        raise problems.UPLOAD_NOT_PUBLISHABLE_HERE()
    limit = int(rt.config["MAX_UPLOAD_BYTES"])
    try:
        with rt.store.open(key) as stream:
            data = stream.read(limit + 1)
    except BlobNotFound as err:
        raise problems.UPLOAD_GONE() from err
    with rt.db.session() as s:
        exists = s.scalar(select(Form.id).where(Form.project_id == _project_id(), Form.current_version_id.is_not(None),
                                                Form.xml_form_id == _form_id_of(data, filename))) is not None
    if exists:
        return _save_draft(data, filename)
    try:
        with rt.db.write() as s:
            user = s.get(User, current_user.id)
            res = form_service.publish_form(s, rt.store, project_id=_project_id(), data=data, filename=filename,
                                            user=user, validate=setup.validate_setting(rt))
            if res.created:
                audit.record(s, db_user(), "form.publish", f"form:{res.form.xml_form_id}", client_ip(),
                             version=res.version.version, filename=filename)
            form_id, version, created = res.form.xml_form_id, res.version.version, res.created
            managed = res.managed_encryption
            missing = form_service.missing_attachments(res.version)
    except Problem as problem:
        if problem.code == problems.VERSION_CONFLICT.code:
            raise problems.VERSION_CONFLICT_WEB(detail=_conflict_message(*_conflict_ids(problem))) from problem
        if problem.details.get("issues"):
            return render_template("forms/preview.html", filename=filename, errors=_issue_rows(problem),
                                   max_mb=_max_mb()), problem.status
        raise
    if created:
        flash(t("Version {version} of {form_id} is published.", version=version, form_id=form_id))
        if managed:
            flash(t("Encryption is on for this project, so this form was encrypted with the project's key: its "
                    "answers are read only with the passphrase (Encryption page)."))
    else:
        flash(t("This version of {form_id} was already published; nothing changed.", form_id=form_id))
    if missing:
        flash(t("Upload the files this form needs: {files}.", files=", ".join(missing)))
    return redirect(url_for("web.forms_detail", xml_form_id=form_id))


def _form_id_of(data: bytes, filename: str) -> str:
    """The form_id an upload declares (compiled again; the preview showed it compiles)."""
    try:
        return form_service.compile_upload(data, filename, False).form_id
    except Problem:
        return ""


def _save_draft(data: bytes, filename: str) -> Any:
    rt = runtime()
    try:
        with rt.db.write() as s:
            user = s.get(User, current_user.id)
            res = form_service.create_draft(s, rt.store, project_id=_project_id(), data=data, filename=filename,
                                            key=rt.config["SECRET_KEY"], user=user,
                                            validate=setup.validate_setting(rt))
            audit.record(s, db_user(), "form.draft", f"form:{res.form.xml_form_id}", client_ip(),
                         version=res.draft.version, filename=filename, replaced=res.replaced)
            form_id, replaced, discarded = res.form.xml_form_id, res.replaced, res.discarded
    except Problem as problem:
        if problem.details.get("issues"):
            return render_template("forms/preview.html", filename=filename, errors=_issue_rows(problem),
                                   max_mb=_max_mb()), problem.status
        raise
    flash(t("The draft is saved. Phones keep the published version until you publish the draft."))
    if replaced:
        flash(t("It replaces the earlier draft; {n} test submissions were discarded.", n=discarded))
    return redirect(url_for("web.forms_draft", xml_form_id=form_id))


def _conflict_ids(problem: Problem) -> tuple[str, str]:
    """The form id and version named in publish_form's VERSION_CONFLICT (to say it again, translated)."""
    return str(problem.fields.get("form_id", "")), str(problem.fields.get("version", ""))


# ---------------------------------------------------------------- one form

@bp.get("/forms/<xml_form_id>")
@requires(*ROLES)
def forms_detail(xml_form_id: str) -> Any:
    rt = runtime()
    with rt.db.session() as s:
        form = _get_form(s, xml_form_id)
        versions = form_service.list_versions(s, form)
        submissions = s.scalar(select(func.count()).select_from(Submission).where(
            Submission.form_id == form.id, Submission.deleted_at.is_(None))) or 0
        current = form.current_version
        attachments = list(current.attachments) if current else []
        draft = form_service.get_draft(s, form)
        draft_info = {"version": draft.version, "title": draft.title, "created_at": draft.created_at,
                      "tests": form_service.count_test_submissions(s, draft)} if draft is not None else None
    return render_template("forms/detail.html", form=form, current=current, versions=versions,
                           attachments=attachments, submissions=submissions, states=FORM_STATES,
                           draft=draft_info, tr=tr, max_mb=_max_mb())


@bp.post("/forms/<xml_form_id>/state")
@requires(*ROLES)
def forms_state(xml_form_id: str) -> Any:
    rt = runtime()
    state = request.form.get("state", "")
    with rt.db.write() as s:
        form = _changeable_form(s, xml_form_id)
        if state not in FORM_STATES:
            raise problems.FORM_STATE_CHOOSE()
        before = form.state
        if before != state:
            form_service.set_state(s, form, state, user=db_user())
            audit.record(s, db_user(), "form.state", f"form:{xml_form_id}", client_ip(), old=before, new=state)
    flash(t("The form is now {state}.", state=t(state.capitalize())))
    return redirect(url_for("web.forms_detail", xml_form_id=xml_form_id))


@bp.post("/forms/<xml_form_id>/files/<filename>")
@requires(*ROLES)
def forms_attachment_upload(xml_form_id: str, filename: str) -> Any:
    rt = runtime()
    limit = int(rt.config["MAX_UPLOAD_BYTES"])
    upload = request.files.get("file")
    with rt.db.write() as s:
        form = _changeable_form(s, xml_form_id)
        if upload is None or not upload.filename:
            raise problems.NO_FILE_CHOSEN()
        if form.current_version is None:
            raise problems.NO_SUCH_FORM()
        try:
            att = form_service.upload_attachment(s, rt.store, form.current_version, filename, upload.stream, limit,
                                                  user=db_user())
        except Problem as problem:
            if problem.code == problems.ATTACHMENT_TOO_LARGE.code or isinstance(problem.__cause__, BlobTooLarge):
                raise problems.UPLOAD_TOO_LARGE(name=filename, mb=_max_mb()) from problem
            raise
        audit.record(s, db_user(), "form.attachment", f"form:{xml_form_id}", client_ip(), filename=filename,
                     md5=att.md5, size=att.size, version=form.current_version.version)
    flash(t("{name} was uploaded.", name=filename))
    return redirect(url_for("web.forms_detail", xml_form_id=xml_form_id) + "#files")


@bp.get("/forms/<xml_form_id>/files/<filename>")
@requires(*ROLES)
def forms_attachment_download(xml_form_id: str, filename: str) -> Any:
    rt = runtime()
    with rt.db.session() as s:
        form = _get_form(s, xml_form_id)
        att = next((a for a in (form.current_version.attachments if form.current_version else [])
                    if a.filename == filename and a.blob_key), None)
        if att is None or att.blob_key is None:
            raise problems.FILE_NOT_UPLOADED()
        key, md5, ctype = att.blob_key, att.md5 or att.blob_key, att.content_type or "application/octet-stream"
    return blob_response(rt, key, md5, filename, ctype)


@bp.get("/forms/<xml_form_id>/versions/<ref>/<any(source, xml):what>")
@declare(ROLES)
@requires(*ROLES)
def forms_version_file(xml_form_id: str, ref: str, what: str) -> Any:
    """The file a version (a published one by id, or "draft") was made from, byte for byte as uploaded,
    or the XForm phones download."""
    rt = runtime()
    with rt.db.session() as s:
        form = _get_form(s, xml_form_id)
        try:
            get = form_service.version_xml if what == "xml" else form_service.version_source
            file = get(s, form, ref)
        except Problem as problem:
            raise problems.NOT_FOUND_RELAYED(detail=t("This file has not been uploaded.") if what == "source"
                          else t("There is no such form.")) from problem
    if file.data is not None:
        resp = current_app.response_class(file.data, content_type=file.content_type)
        resp.headers["Content-Disposition"] = f"attachment; filename=\"{_ascii(file.filename)}\""
        return resp
    assert file.blob_key is not None
    return blob_response(rt, file.blob_key, file.blob_key[:32], file.filename, file.content_type)


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)


from . import form_drafts  # noqa: E402,F401  (drafts and comparison pages register their routes on bp)
