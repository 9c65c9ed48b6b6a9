"""Submissions through Central's REST API: create, attachments, edit, review, comments, versions, audits.

    POST  /v1/projects/{p}/forms/{f}/submissions                      XML body → Submission
    POST  /v1/projects/{p}/forms/{f}/submissions/{iid}/attachments/{name}   raw body (chunked too)
    PUT   /v1/projects/{p}/forms/{f}/submissions/{iid}                 XML with meta/deprecatedID
    PATCH /v1/projects/{p}/forms/{f}/submissions/{iid}                 {"reviewState": …}
    GET   /v1/projects/{p}/forms/{f}/submissions/{iid}.xml
    GET|POST /v1/projects/{p}/forms/{f}/submissions/{iid}/comments
    GET   /v1/projects/{p}/forms/{f}/submissions/{iid}/versions[/{vid}[.xml|/attachments[/{name}]]]
    GET   /v1/projects/{p}/forms/{f}/submissions/{iid}/audits

The work is in app/services/submissions_api.py (same ingest path as OpenRosa).
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from app.blobhttp import blob_response
from app.central import submissions as svc
from app.errors import Problem
from app.routeaccess import READERS, declare
from app.runtime import runtime
from app.services import audit
from app.services.submissions import records

from . import bp
from .auth import api_user

SUB = "/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions"
WRITERS = ("admin", "coordinator", "collector")
MAX_JSON = 250 * 1024


def _xml_body() -> bytes:
    limit = runtime().config["MAX_SUBMISSION_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "413.2", f"The submission is larger than this server accepts ({limit} bytes).")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise Problem(413, "413.2", f"The submission is larger than this server accepts ({limit} bytes).")
    if not data.strip():
        raise Problem(400, "400.2", "Send the submission XML as the request body (Content-Type: application/xml).")
    return data


def _json_body() -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_JSON:
        raise Problem(413, "413.1", "The JSON body is too large.")
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise Problem(400, "400.1", "Send a JSON object as the request body.")
    return body


def _ip() -> str:
    return request.remote_addr or ""


@bp.post(SUB)
@declare(WRITERS, scoped=True, note="collectors: forms they may fill")
def submission_create(project_id: int, xml_form_id: str) -> Response:
    user = api_user()
    rt = runtime()
    body = svc.create(rt.db, rt.store, user, project_id, xml_form_id, _xml_body(),
                      device_id=request.args.get("deviceID"), user_agent=request.headers.get("User-Agent"),
                      max_bytes=rt.config["MAX_SUBMISSION_BYTES"], ip=_ip())
    return jsonify(body)


@bp.post(f"{SUB}/<path:instance_id>/attachments/<name>")
@declare(WRITERS, scoped=True, note="collectors: only their own submissions")
def submission_attachment_upload(project_id: int, xml_form_id: str, instance_id: str, name: str) -> Response:
    user = api_user()
    rt = runtime()
    svc.upload_attachment(rt.db, rt.store, user, project_id, xml_form_id, instance_id, name, request.stream,
                          request.mimetype or None, max_bytes=rt.config["MAX_SUBMISSION_BYTES"], ip=_ip())
    return jsonify({"success": True})


@bp.put(f"{SUB}/<path:instance_id>")
@declare(WRITERS, scoped=True, note="collectors: only their own submissions")
def submission_edit(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    user = api_user()
    rt = runtime()
    return jsonify(svc.edit(rt.db, rt.store, user, project_id, xml_form_id, instance_id, _xml_body(),
                            user_agent=request.headers.get("User-Agent"),
                            max_bytes=rt.config["MAX_SUBMISSION_BYTES"], ip=_ip()))


@bp.patch(f"{SUB}/<path:instance_id>")
@declare(READERS, scoped=True)
def submission_review(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    user = api_user()
    body = _json_body()
    with runtime().db.write() as s:
        return jsonify(svc.set_review(s, user, project_id, xml_form_id, instance_id, body, ip=_ip()))


def _xml_response(xml: bytes) -> Response:
    return Response(xml, content_type="application/xml; charset=utf-8")


def _shown_xml(s: Any, user: Any, project_id: int, sv: Any) -> tuple[bytes, bool]:
    """The version's XML as this user may see it (sensitive answers masked), and whether it is unmasked."""
    from app.models import FormVersion
    from app.services import access
    from app.services.forms import schema_of

    red = access.Redactor(s, user, project_id)
    fv = s.get(FormVersion, sv.form_version_id)
    return (sv.xml, True) if red.show else (red.xml(schema_of(fv), sv.xml), False)


@bp.get(f"{SUB}/<path:instance_id>.xml")
@declare(READERS, scoped=True)
def submission_xml(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    user = api_user()
    with runtime().db.write() as s:
        _sub, sv = svc.get_version(s, user, project_id, xml_form_id, instance_id, None)
        xml, unmasked = _shown_xml(s, user, project_id, sv)
        audit.record(s, user, "submission.view", target=svc.target(xml_form_id, instance_id), ip=_ip(), xml=True,
                     unmasked=unmasked)
        return _xml_response(xml)


@bp.get(f"{SUB}/<path:instance_id>/comments")
@declare(READERS, scoped=True)
def submission_comments(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify(svc.list_comments(s, user, project_id, xml_form_id, instance_id))


@bp.post(f"{SUB}/<path:instance_id>/comments")
@declare(READERS, scoped=True)
def submission_comment_add(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    user = api_user()
    body = _json_body()
    with runtime().db.write() as s:
        return jsonify(svc.add_comment(s, user, project_id, xml_form_id, instance_id, body, ip=_ip()))


@bp.get(f"{SUB}/<path:instance_id>/versions")
@declare(READERS, scoped=True)
def submission_versions(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify(svc.versions(s, user, project_id, xml_form_id, instance_id))


@bp.get(f"{SUB}/<path:instance_id>/versions/<version_id>")
@declare(READERS, scoped=True)
def submission_version(project_id: int, xml_form_id: str, instance_id: str, version_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        sub, sv = svc.get_version(s, user, project_id, xml_form_id, instance_id, version_id)
        return jsonify(svc.version_json(sv, sub))


@bp.get(f"{SUB}/<path:instance_id>/versions/<version_id>.xml")
@declare(READERS, scoped=True)
def submission_version_xml(project_id: int, xml_form_id: str, instance_id: str, version_id: str) -> Response:
    user = api_user()
    with runtime().db.write() as s:
        _sub, sv = svc.get_version(s, user, project_id, xml_form_id, instance_id, version_id)
        xml, unmasked = _shown_xml(s, user, project_id, sv)
        audit.record(s, user, "submission.view", target=svc.target(xml_form_id, instance_id), ip=_ip(),
                     xml=True, version=version_id, unmasked=unmasked)
        return _xml_response(xml)


@bp.get(f"{SUB}/<path:instance_id>/versions/<version_id>/attachments")
@declare(READERS, scoped=True)
def submission_version_attachments(project_id: int, xml_form_id: str, instance_id: str,
                                   version_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        _sub, sv = svc.get_version(s, user, project_id, xml_form_id, instance_id, version_id)
        withheld = records.withheld_files(s, project_id, user, sv)
        return jsonify([{"name": a.name, "exists": a.blob_key is not None} for a in sv.attachments
                        if a.name not in withheld])


@bp.get(f"{SUB}/<path:instance_id>/versions/<version_id>/attachments/<name>")
@declare(READERS, scoped=True)
def submission_version_attachment(project_id: int, xml_form_id: str, instance_id: str, version_id: str,
                                  name: str) -> Response:
    user = api_user()
    rt = runtime()
    with rt.db.write() as s:
        att = records.get_attachment(s, project_id, user, xml_form_id, instance_id, name, version=version_id)
        key, md5, ctype = att.blob_key, att.md5, att.content_type or "application/octet-stream"
        audit.record(s, user, "attachment.download", target=svc.target(xml_form_id, instance_id), ip=_ip(),
                     name=name, version=version_id)
    assert key is not None and md5 is not None
    return blob_response(rt, key, md5, name, ctype)


@bp.get(f"{SUB}/<path:instance_id>/audits")
@declare(READERS, scoped=True)
def submission_audits(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify(svc.audits(s, user, project_id, xml_form_id, instance_id))
