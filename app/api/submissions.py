"""Submission attachments (Central's path shape)."""
from __future__ import annotations

from flask import Response, request

from app.blobhttp import blob_response
from app.routeaccess import READERS, declare
from app.runtime import runtime
from app.services import audit
from app.services.submissions import records

from . import bp
from .auth import api_user


@bp.get("/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions/<instance_id>/attachments/<name>")
@declare(READERS, scoped=True)
def submission_attachment(project_id: int, xml_form_id: str, instance_id: str, name: str) -> Response:
    user = api_user()
    rt = runtime()
    with rt.db.write() as session:
        att = records.get_attachment(session, project_id, user, xml_form_id, instance_id, name)
        key, md5, ctype = att.blob_key, att.md5, att.content_type or "application/octet-stream"
        audit.record(session, user, "attachment.download", target=f"submission:{xml_form_id}/{instance_id}/{name}",
                     ip=request.remote_addr or "", via="api")
    assert key is not None and md5 is not None
    return blob_response(rt, key, md5, name, ctype)
