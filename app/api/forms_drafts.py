"""A form's draft, versions, state and files through Central's API (docs/odk-protocol.md, *Central's REST
API and OData*, *Drafts and form files*).

    POST/GET/DELETE  /v1/projects/{p}/forms/{f}/draft          make (body: XLSForm / XForm; none: copy of
                                                               the published version) / read / abandon
    GET              /v1/projects/{p}/forms/{f}/draft.xml
    GET              /v1/projects/{p}/forms/{f}/draft/attachments
    POST             /v1/projects/{p}/forms/{f}/draft/attachments/{name}   raw body
    POST             /v1/projects/{p}/forms/{f}/draft/publish?version=
    GET              /v1/projects/{p}/forms/{f}/versions, /versions/{v}, /versions/{v}.xml, /versions/{v}.xlsx|.xls
    PATCH            /v1/projects/{p}/forms/{f}                  {"state": "open|closing|closed"}
    GET              /v1/projects/{p}/forms/{f}/attachments      the published version's files

Writes and the draft (whose JSON carries its test token: Central's form.update) need
access.require(user, "form.manage") (coordinators, admins); writes are audited. Published versions,
their files and attachments are for readers. The work is the forms service's (app.services.forms); this
module only speaks Central.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from flask import Response, request
from sqlalchemy import select

from app import problems
from app.blobhttp import blob_response
from app.central import shapes as central
from app.errors import Problem
from app.models import Form, FormVersion, User
from app.routeaccess import COORDINATORS, READERS
from app.services import access, audit
from app.services import forms as form_service
from app.services.ops import setup

from . import Call, endpoint
from .bodies import json_body
from .forms_write import check_warnings, draft_json, read_definition

FORM = "/v1/projects/<int:project_id>/forms/<xml_form_id>"
EMPTY_VERSION = "___"  # Central's name for the empty version string in URLs
KINDS = {"image": "image", "audio": "audio", "video": "video"}


def _form(s: Any, user: User, project_id: int, xml_form_id: str) -> Form:
    """The form, published or not (a form made with ?publish=false has only a draft); 404 otherwise."""
    central.get_project(s, user, project_id)
    form = s.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None or (form.current_version is None and form_service.get_draft(s, form) is None):
        raise problems.NOT_FOUND()
    return form


def _manager(user: User) -> User:
    access.require(user, "form.manage")
    return user


def _changeable(s: Any, user: User, project_id: int, xml_form_id: str) -> Form:
    """The form, when the user may change it (access.require_form_change: its draft, files, state); its
    draft, which carries the test token, is for the same users."""
    form = _form(s, _manager(user), project_id, xml_form_id)
    access.require_form_change(s, user, project_id, form)
    return form


def _attachment_json(att: Any) -> dict[str, Any]:
    return {"name": att.filename, "type": KINDS.get(att.kind, "file"), "exists": bool(att.present),
            "blobExists": att.blob_key is not None, "datasetExists": att.dataset is not None,
            "hash": att.md5, "updatedAt": central.iso(att.uploaded_at)}


def _version_json(form: Form, fv: FormVersion, by: str | None = None, user: User | None = None) -> dict[str, Any]:
    body = {"projectId": form.project_id, "xmlFormId": form.xml_form_id, "name": fv.title, "version": fv.version,
            "hash": fv.md5, "sha256": fv.sha256, "state": form.state, "enketoId": None, "keyId": None,
            "createdAt": central.iso(form.created_at), "updatedAt": None, "publishedAt": central.iso(fv.published_at)}
    if central.extended(request.headers):
        body["publishedBy"] = {"id": fv.published_by_id, "displayName": by} if fv.published_by_id else None
        body["excelContentType"] = _excel_type(fv.source_filename)
        if user is not None and access.can(user, "form.manage"):  # as Central: notes for those who may change the form
            body["publishNotes"] = fv.publish_notes
    return body


def _excel_type(filename: str | None) -> str | None:
    ext = (filename or "").rsplit(".", 1)[-1].lower()
    return {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xls": "application/vnd.ms-excel"}.get(ext)


def _xml(xml: bytes) -> Response:
    return Response(xml, content_type="application/xml; charset=utf-8")


# ---------------------------------------------------------------- the draft

@endpoint(f"{FORM}/draft", roles=COORDINATORS, methods=["POST"], tx="none")
def form_draft_create(call: Call, project_id: int, xml_form_id: str) -> Any:
    user, rt = _manager(call.user), call.rt
    with rt.db.session() as s:
        _changeable(s, user, project_id, xml_form_id)  # before reading the body
    body = request.content_length != 0 and request.mimetype not in ("", "application/json")
    definition = read_definition(xml_form_id) if body else None
    validate = setup.validate_setting(rt)
    with rt.db.write() as s:
        form = _changeable(s, user, project_id, xml_form_id)
        if definition is None:
            made = form_service.draft_from_published(s, rt.store, form, key=rt.config["SECRET_KEY"], user=user,
                                                     validate=validate)
        else:
            data, filename, _ = definition  # a sheet without form_id is the draft of this very form
            made = form_service.create_draft(s, rt.store, project_id=project_id, data=data, filename=filename,
                                             key=rt.config["SECRET_KEY"], user=user, validate=validate,
                                             form_id=form.xml_form_id, form_id_fallback=form.xml_form_id)
            check_warnings(list(made.draft.warnings), filename)
        audit.record(s, user, "form.draft", f"form:{xml_form_id}", call.ip, version=made.draft.version,
                     filename=made.draft.source_filename, via="api", test_submissions_discarded=made.discarded)


@endpoint(f"{FORM}/draft", roles=COORDINATORS, note="as Central (form.update): the draft carries its test token")
def form_draft(call: Call, project_id: int, xml_form_id: str) -> Any:
    form = _changeable(call.session, call.user, project_id, xml_form_id)
    return draft_json(form, form_service.require_draft(call.session, form), call.rt.config["SECRET_KEY"])


@endpoint(f"{FORM}/draft", roles=COORDINATORS, methods=["DELETE"], tx="write")
def form_draft_delete(call: Call, project_id: int, xml_form_id: str) -> Any:
    s, user = call.session, _manager(call.user)
    form = _changeable(s, user, project_id, xml_form_id)
    version = form_service.require_draft(s, form).version
    discarded = form_service.delete_draft(s, form, user=user)
    audit.record(s, user, "form.draft.abandon", f"form:{xml_form_id}", call.ip, version=version, via="api",
                 test_submissions_discarded=discarded)


@endpoint(f"{FORM}/draft.xml", roles=COORDINATORS, note="as Central (form.update): the draft carries its test token")
def form_draft_xml(call: Call, project_id: int, xml_form_id: str) -> Any:
    s = call.session
    return _xml(form_service.require_draft(s, _changeable(s, call.user, project_id, xml_form_id)).xml)


@endpoint(f"{FORM}/draft/attachments", roles=COORDINATORS,
          note="as Central (form.update): the draft carries its test token")
def form_draft_attachments(call: Call, project_id: int, xml_form_id: str) -> Any:
    s = call.session
    draft = form_service.require_draft(s, _changeable(s, call.user, project_id, xml_form_id))
    return [_attachment_json(a) for a in draft.attachments]


@endpoint(f"{FORM}/draft/attachments/<name>", roles=COORDINATORS, methods=["POST"], tx="write")
def form_draft_attachment_upload(call: Call, project_id: int, xml_form_id: str, name: str) -> Any:
    s, user, rt = call.session, _manager(call.user), call.rt
    draft = form_service.require_draft(s, _changeable(s, user, project_id, xml_form_id))
    try:
        att = form_service.upload_draft_attachment(s, rt.store, draft, name, request.stream,
                                                   int(rt.config["MAX_UPLOAD_BYTES"]), user=user)
    except Problem as problem:
        if problem.code == problems.FORM_DOES_NOT_USE_FILE.code:  # Central: a name the form does not use is 404.1
            raise problems.NOT_FOUND_RELAYED(detail=problem.message) from problem
        raise
    audit.record(s, user, "form.attachment", f"form:{xml_form_id}", call.ip, filename=name, md5=att.md5,
                 size=att.size, version=draft.version, draft=True, via="api")


@endpoint(f"{FORM}/draft/publish", roles=COORDINATORS, methods=["POST"], tx="write")
def form_draft_publish(call: Call, project_id: int, xml_form_id: str) -> Any:
    s, user = call.session, _manager(call.user)
    form = _changeable(s, user, project_id, xml_form_id)
    fv, discarded = form_service.publish_draft(s, form, version=request.args.get("version"),
                                               user=s.get(User, user.id), notes=_publish_notes())
    audit.record(s, user, "form.publish", f"form:{xml_form_id}", call.ip, version=fv.version,
                 filename=fv.source_filename, draft=True, via="api", test_submissions_discarded=discarded)


def _publish_notes() -> str | None:
    """The notes of a publish: Central's `X-Action-Notes` header (percent-encoded, as for any action), or
    `publishNotes` in a JSON body."""
    header = request.headers.get("X-Action-Notes")
    if header is not None:
        return unquote(header)
    if request.mimetype == "application/json" and request.content_length:
        notes = json_body(example='{"publishNotes": "Added the school question"}').get("publishNotes")
        if notes is not None and not isinstance(notes, str):
            raise problems.PUBLISH_NOTES_NOT_TEXT()
        return notes
    return None


# ---------------------------------------------------------------- published versions, state, files

def _find_version(s: Any, form: Form, version: str) -> FormVersion:
    wanted = "" if version == EMPTY_VERSION else version
    fv = s.scalar(select(FormVersion).where(FormVersion.form_id == form.id, FormVersion.version == wanted))
    if fv is None:
        raise problems.FORM_VERSION_NOT_PUBLISHED(xml_form_id=form.xml_form_id, version=version)
    return fv


@endpoint(f"{FORM}/versions", roles=READERS)
def form_versions(call: Call, project_id: int, xml_form_id: str) -> Any:
    form = central.get_form(call.session, call.user, project_id, xml_form_id)
    return [_version_json(form, fv, by, call.user) for fv, by in form_service.list_versions(call.session, form)]


@endpoint(f"{FORM}/versions/<version>", roles=READERS)
def form_version(call: Call, project_id: int, xml_form_id: str, version: str) -> Any:
    s = call.session
    form = central.get_form(s, call.user, project_id, xml_form_id)
    fv = _find_version(s, form, version)
    by = s.get(User, fv.published_by_id) if fv.published_by_id else None
    return _version_json(form, fv, by.username if by else None, call.user)


@endpoint(f"{FORM}/versions/<version>.xml", roles=READERS)
def form_version_xml(call: Call, project_id: int, xml_form_id: str, version: str) -> Any:
    s = call.session
    return _xml(_find_version(s, central.get_form(s, call.user, project_id, xml_form_id), version).xml)


@endpoint(f"{FORM}/versions/<version>.xlsx", roles=READERS, tx="none")
def form_version_xlsx(call: Call, project_id: int, xml_form_id: str, version: str) -> Any:
    return _version_source(call, project_id, xml_form_id, version, "xlsx")


@endpoint(f"{FORM}/versions/<version>.xls", roles=READERS, tx="none")
def form_version_xls(call: Call, project_id: int, xml_form_id: str, version: str) -> Any:
    return _version_source(call, project_id, xml_form_id, version, "xls")


@endpoint(f"{FORM}.xlsx", roles=READERS, tx="none")
def form_xlsx(call: Call, project_id: int, xml_form_id: str) -> Any:
    return _version_source(call, project_id, xml_form_id, None, "xlsx")


@endpoint(f"{FORM}.xls", roles=READERS, tx="none")
def form_xls(call: Call, project_id: int, xml_form_id: str) -> Any:
    return _version_source(call, project_id, xml_form_id, None, "xls")


@endpoint(f"{FORM}/draft.xlsx", roles=COORDINATORS, tx="none",
          note="as Central (form.update): those who may change the form")
def form_draft_xlsx(call: Call, project_id: int, xml_form_id: str) -> Any:
    return _version_source(call, project_id, xml_form_id, DRAFT, "xlsx")


@endpoint(f"{FORM}/draft.xls", roles=COORDINATORS, tx="none",
          note="as Central (form.update): those who may change the form")
def form_draft_xls(call: Call, project_id: int, xml_form_id: str) -> Any:
    return _version_source(call, project_id, xml_form_id, DRAFT, "xls")


DRAFT = object()  # _version_source's marker for the draft


def _version_source(call: Call, project_id: int, xml_form_id: str, version: Any, ext: str) -> Response:
    """The XLSForm a version (a version string; None: the current one; DRAFT: the draft) was made from,
    byte for byte (Central: only for XLSForm uploads)."""
    rt = call.rt
    with rt.db.session() as s:
        if version is DRAFT:
            fv: Any = form_service.require_draft(s, _changeable(s, call.user, project_id, xml_form_id))
        else:
            form = central.get_form(s, call.user, project_id, xml_form_id)
            fv = form.current_version if version is None else _find_version(s, form, version)
        name = fv.source_filename or ""
        if not fv.source_blob_key or not name.lower().endswith(f".{ext}"):
            made = name.rsplit(".", 1)[-1] if "." in name else "XForm"
            raise problems.VERSION_SOURCE_OTHER_TYPE(version=fv.version, ext=ext, made=made)
        key, md5 = fv.source_blob_key, fv.md5
    return blob_response(rt, key, md5, name, _excel_type(name) or "application/octet-stream")


@endpoint(FORM, roles=COORDINATORS, methods=["PATCH"], tx="write")
def form_update(call: Call, project_id: int, xml_form_id: str) -> Any:
    s, user = call.session, _manager(call.user)
    form = central.get_form(s, user, project_id, xml_form_id)
    access.require_form_change(s, user, project_id, form)
    body = json_body(example='{"state": "closing"}')
    if not isinstance(body.get("state"), str):
        raise problems.FORM_STATE_BODY()
    before = form.state
    form_service.set_state(s, form, body["state"], user=user)
    if before != form.state:
        audit.record(s, user, "form.state", f"form:{xml_form_id}", call.ip, old=before, new=form.state, via="api")
    s.flush()
    return central.form_json(form)


@endpoint(f"{FORM}/attachments", roles=READERS)
def form_attachments(call: Call, project_id: int, xml_form_id: str) -> Any:
    fv = central.get_form(call.session, call.user, project_id, xml_form_id).current_version
    assert fv is not None
    return [_attachment_json(a) for a in fv.attachments]
