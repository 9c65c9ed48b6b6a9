"""Submissions through Central's REST API: create, attachments, edit, review, comments, versions, audits.

    POST  /v1/projects/{p}/forms/{f}/submissions                      XML body → Submission
    POST  /v1/projects/{p}/forms/{f}/submissions/{iid}/attachments/{name}   raw body (chunked too)
    PUT   /v1/projects/{p}/forms/{f}/submissions/{iid}                 XML with meta/deprecatedID
    PATCH /v1/projects/{p}/forms/{f}/submissions/{iid}                 {"reviewState": …}
    DELETE /v1/projects/{p}/forms/{f}/submissions/{iid}                to the trash (30 days, then purged)
    POST  /v1/projects/{p}/forms/{f}/submissions/{iid}/restore         out of the trash
    GET   /v1/projects/{p}/forms/{f}/submissions/{iid}.xml
    GET|POST /v1/projects/{p}/forms/{f}/submissions/{iid}/comments
    GET   /v1/projects/{p}/forms/{f}/submissions/{iid}/versions[/{vid}[.xml|/attachments[/{name}]]]
    GET   /v1/projects/{p}/forms/{f}/submissions/{iid}/audits

The work is in app/central/submissions.py (the same ingest path as OpenRosa).
"""
from __future__ import annotations

from typing import Any

from flask import Response, request
from sqlalchemy.orm import Session

from app.blobhttp import blob_response
from app.central import submissions as svc
from app.models import FormVersion, SubmissionVersion, User
from app.routeaccess import COORDINATORS, READERS
from app.services import access, audit
from app.services.schemas import schema_of
from app.services.submissions import records, trash

from . import Call, endpoint
from .bodies import json_body, xml_body

SUB = "/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions"
WRITERS = ("admin", "coordinator", "collector")


@endpoint(SUB, roles=WRITERS, methods=["POST"], scoped=True, tx="none", note="collectors: forms they may fill")
def submission_create(call: Call, project_id: int, xml_form_id: str) -> Any:
    return svc.create(call.rt.db, call.rt.store, call.user, project_id, xml_form_id, xml_body(),
                      device_id=request.args.get("deviceID"), user_agent=request.headers.get("User-Agent"),
                      max_bytes=call.rt.config["MAX_SUBMISSION_BYTES"], ip=call.ip)


@endpoint(f"{SUB}/<path:instance_id>/attachments/<name>", roles=WRITERS, methods=["POST"], scoped=True, tx="none",
          note="collectors: only their own submissions")
def submission_attachment_upload(call: Call, project_id: int, xml_form_id: str, instance_id: str, name: str) -> Any:
    svc.upload_attachment(call.rt.db, call.rt.store, call.user, project_id, xml_form_id, instance_id, name,
                          request.stream, request.mimetype or None, max_bytes=call.rt.config["MAX_SUBMISSION_BYTES"],
                          ip=call.ip)


@endpoint(f"{SUB}/<path:instance_id>", roles=WRITERS, methods=["PUT"], scoped=True, tx="none",
          note="collectors: only their own submissions")
def submission_edit(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    return svc.edit(call.rt.db, call.rt.store, call.user, project_id, xml_form_id, instance_id, xml_body(),
                    user_agent=request.headers.get("User-Agent"), max_bytes=call.rt.config["MAX_SUBMISSION_BYTES"],
                    ip=call.ip)


@endpoint(f"{SUB}/<path:instance_id>", roles=READERS, methods=["PATCH"], scoped=True, tx="write")
def submission_review(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    return svc.set_review(call.session, call.user, project_id, xml_form_id, instance_id, json_body(), ip=call.ip)


@endpoint(f"{SUB}/<path:instance_id>", roles=COORDINATORS, methods=["DELETE"], scoped=True, tx="write")
def submission_delete(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    trash.delete_submission(call.session, project_id, call.user, xml_form_id, instance_id, ip=call.ip)


@endpoint(f"{SUB}/<path:instance_id>/restore", roles=COORDINATORS, methods=["POST"], scoped=True, tx="write")
def submission_restore(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    trash.restore_submission(call.session, project_id, call.user, xml_form_id, instance_id, ip=call.ip)


def _xml_response(xml: bytes) -> Response:
    return Response(xml, content_type="application/xml; charset=utf-8")


def _shown_xml(s: Session, user: User, project_id: int, sv: SubmissionVersion) -> tuple[bytes, bool]:
    """The version's XML as this user may see it (sensitive answers masked), and whether it is unmasked."""
    red = access.Redactor(s, user, project_id)
    fv = s.get(FormVersion, sv.form_version_id)
    assert fv is not None
    return (sv.xml, True) if red.show else (red.xml(schema_of(fv), sv.xml), False)


@endpoint(f"{SUB}/<path:instance_id>.xml", roles=READERS, scoped=True, tx="write")
def submission_xml(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    _sub, sv = svc.get_version(call.session, call.user, project_id, xml_form_id, instance_id, None)
    xml, unmasked = _shown_xml(call.session, call.user, project_id, sv)
    audit.record(call.session, call.user, "submission.view", target=svc.target(xml_form_id, instance_id), ip=call.ip,
                 xml=True, unmasked=unmasked)
    return _xml_response(xml)


@endpoint(f"{SUB}/<path:instance_id>/comments", roles=READERS, scoped=True)
def submission_comments(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    return svc.list_comments(call.session, call.user, project_id, xml_form_id, instance_id)


@endpoint(f"{SUB}/<path:instance_id>/comments", roles=READERS, methods=["POST"], scoped=True, tx="write")
def submission_comment_add(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    return svc.add_comment(call.session, call.user, project_id, xml_form_id, instance_id, json_body(), ip=call.ip)


@endpoint(f"{SUB}/<path:instance_id>/versions", roles=READERS, scoped=True)
def submission_versions(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    return svc.versions(call.session, call.user, project_id, xml_form_id, instance_id)


@endpoint(f"{SUB}/<path:instance_id>/versions/<version_id>", roles=READERS, scoped=True)
def submission_version(call: Call, project_id: int, xml_form_id: str, instance_id: str, version_id: str) -> Any:
    sub, sv = svc.get_version(call.session, call.user, project_id, xml_form_id, instance_id, version_id)
    return svc.version_json(sv, sub, records.InstanceNames(call.session, call.user, project_id))


@endpoint(f"{SUB}/<path:instance_id>/versions/<version_id>.xml", roles=READERS, scoped=True, tx="write")
def submission_version_xml(call: Call, project_id: int, xml_form_id: str, instance_id: str, version_id: str) -> Any:
    _sub, sv = svc.get_version(call.session, call.user, project_id, xml_form_id, instance_id, version_id)
    xml, unmasked = _shown_xml(call.session, call.user, project_id, sv)
    audit.record(call.session, call.user, "submission.view", target=svc.target(xml_form_id, instance_id), ip=call.ip,
                 xml=True, version=version_id, unmasked=unmasked)
    return _xml_response(xml)


@endpoint(f"{SUB}/<path:instance_id>/versions/<version_id>/attachments", roles=READERS, scoped=True)
def submission_version_attachments(call: Call, project_id: int, xml_form_id: str, instance_id: str,
                                   version_id: str) -> Any:
    _sub, sv = svc.get_version(call.session, call.user, project_id, xml_form_id, instance_id, version_id)
    withheld = records.withheld_files(call.session, project_id, call.user, sv)
    return [{"name": a.name, "exists": a.blob_key is not None} for a in sv.attachments if a.name not in withheld]


@endpoint(f"{SUB}/<path:instance_id>/versions/<version_id>/attachments/<name>", roles=READERS, scoped=True,
          tx="none")
def submission_version_attachment(call: Call, project_id: int, xml_form_id: str, instance_id: str, version_id: str,
                                  name: str) -> Any:
    with call.rt.db.write() as s:
        att = records.get_attachment(s, project_id, call.user, xml_form_id, instance_id, name, version=version_id)
        key, md5, ctype = att.blob_key, att.md5, att.content_type or "application/octet-stream"
        audit.record(s, call.user, "attachment.download", target=svc.target(xml_form_id, instance_id), ip=call.ip,
                     name=name, version=version_id)
    assert key is not None and md5 is not None
    return blob_response(call.rt, key, md5, name, ctype)


@endpoint(f"{SUB}/<path:instance_id>/audits", roles=READERS, scoped=True)
def submission_audits(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    return svc.audits(call.session, call.user, project_id, xml_form_id, instance_id)
