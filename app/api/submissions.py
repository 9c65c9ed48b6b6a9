"""Submission attachments (Central's path shape)."""
from __future__ import annotations

from typing import Any

from app.blobhttp import blob_response
from app.routeaccess import READERS
from app.services import audit
from app.services.submissions import records

from . import Call, endpoint


@endpoint("/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions/<instance_id>/attachments/<name>",
          roles=READERS, scoped=True, tx="none")
def submission_attachment(call: Call, project_id: int, xml_form_id: str, instance_id: str, name: str) -> Any:
    with call.rt.db.write() as session:
        att = records.get_attachment(session, project_id, call.user, xml_form_id, instance_id, name)
        key, md5, ctype = att.blob_key, att.md5, att.content_type or "application/octet-stream"
        audit.record(session, call.user, "attachment.download",
                     target=f"submission:{xml_form_id}/{instance_id}/{name}", ip=call.ip, via="api")
    assert key is not None and md5 is not None
    return blob_response(call.rt, key, md5, name, ctype)
