"""Creating a form through Central's API: `POST /v1/projects/{p}/forms` with the XLSForm (.xlsx / .xls)
or XForm (.xml) as the body. `?publish=true` publishes it at once with the publish service (the same as
`carefile form publish` and the website; an existing form_id gets a new version). Otherwise, as in
Central, the form is made as a draft only (no phone sees it) to be published with
`POST .../forms/{f}/draft/publish` (app/api/forms_drafts.py); a form_id that exists is then 409.3.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from flask import request

from app import problems
from app.central import shapes as central
from app.routeaccess import COORDINATORS
from app.runtime import runtime
from app.services import access, audit
from app.services import forms as form_service
from app.services.ops import setup

from . import Call, endpoint

TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-excel": "xls",
    "application/xml": "xml",
    "text/xml": "xml",
}


def flag(name: str) -> bool:
    return request.args.get(name, "").strip().lower() == "true"


def read_definition(default_stem: str = "form") -> tuple[bytes, str, str | None]:
    """The form file in the request body, the file name it is kept under (the extension from the
    Content-Type) and Central's `X-XlsForm-FormId-Fallback` header (percent-decoded, otherwise kept as
    sent: pyxform uses it as the form id when the settings sheet has none, `uuid:r3-form` and `✅`
    alike)."""
    ext = TYPES.get(request.mimetype)
    if ext is None:
        raise problems.FORM_TYPE_UNSUPPORTED()
    limit = int(runtime().config["MAX_UPLOAD_BYTES"])
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise problems.FORM_FILE_TOO_LARGE(size=limit // (1024 * 1024))
    if not data:
        raise problems.FORM_BODY_EMPTY()
    try:
        fallback = unquote(request.headers.get("X-XlsForm-FormId-Fallback", ""), errors="strict").strip() or None
    except UnicodeDecodeError:
        fallback = "\x00"  # refused below
    if fallback is not None and (len(fallback) > 250 or any(ord(c) < 32 or ord(c) == 0x7F for c in fallback)):
        raise problems.FORM_ID_FALLBACK_INVALID().add(field="X-XlsForm-FormId-Fallback")
    stem = "".join(c for c in (fallback or default_stem) if c not in "/\\") or default_stem
    return data, f"{stem[:200]}.{ext}", fallback


def check_warnings(warnings: list[str], filename: str) -> None:
    """Central refuses an XLSForm with warnings unless `?ignoreWarnings=true` (400.16)."""
    if warnings and not filename.endswith(".xml") and not flag("ignoreWarnings"):
        raise problems.XLSFORM_WARNINGS().add(warnings={"xlsFormWarnings": list(warnings)})


def draft_json(form: Any, draft: Any, key: str) -> dict[str, Any]:
    """A form's draft in Central's shape: the form with the draft's definition and its test token (`key`: the
    server's secret key, which unseals it; null when it was sealed under another one)."""
    return {"projectId": form.project_id, "xmlFormId": form.xml_form_id, "name": draft.title,
            "version": draft.version, "hash": draft.md5, "sha256": draft.sha256, "state": form.state,
            "enketoId": None, "enketoOnceId": None, "keyId": None, "createdAt": central.iso(form.created_at),
            "updatedAt": central.iso(draft.created_at), "publishedAt": None,
            "draftToken": form_service.test_token(draft, key)}


@endpoint("/v1/projects/<int:project_id>/forms", roles=COORDINATORS, methods=["POST"], tx="none")
def form_create(call: Call, project_id: int) -> Any:
    user, rt = call.user, call.rt
    access.require(user, "form.manage")
    data, filename, fallback = read_definition()
    validate = setup.validate_setting(rt)
    publish = flag("publish")
    with rt.db.write() as s:
        central.get_project(s, user, project_id)  # 404 for another project
        if publish:
            if not (filename.endswith(".xml") or flag("ignoreWarnings")):
                check_warnings(list(form_service.compile_upload(data, filename, validate, fallback).warnings),
                               filename)
            res = form_service.publish_form(s, rt.store, project_id=project_id, data=data, filename=filename,
                                            user=user, validate=validate, form_id_fallback=fallback)
            if res.created:
                audit.record(s, user, "form.publish", f"form:{res.form.xml_form_id}", call.ip,
                             version=res.version.version, filename=filename, via="api")
            return central.form_json(res.form)
        made = form_service.create_draft(s, rt.store, project_id=project_id, data=data, filename=filename,
                                         key=rt.config["SECRET_KEY"], user=user, validate=validate, new_form=True,
                                         form_id_fallback=fallback)
        if made.form.current_version is not None or made.replaced:
            raise problems.FORM_EXISTS(xml_form_id=made.form.xml_form_id).add(
                fields=["xmlFormId"], values=[made.form.xml_form_id])
        check_warnings(list(made.draft.warnings), filename)
        audit.record(s, user, "form.draft", f"form:{made.form.xml_form_id}", call.ip, version=made.draft.version,
                     filename=filename, via="api", new_form=True)
        return draft_json(made.form, made.draft, rt.config["SECRET_KEY"])
