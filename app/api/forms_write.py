"""Creating a form through Central's API: `POST /v1/projects/{p}/forms?publish=true` with the XLSForm
(.xlsx / .xls) or XForm (.xml) as the body, published at once with the publish service (the same as
`carefile form publish` and the website). Without `publish=true` Central makes a draft; drafts are the
forms/drafts service's (not here yet), so that answers 501 saying what to do instead.
"""
from __future__ import annotations

from urllib.parse import unquote

from flask import Response, jsonify, request

from app.errors import Problem
from app.routeaccess import COORDINATORS, declare
from app.runtime import runtime
from app.services import audit, central, setup
from app.services import forms as form_service

from . import bp
from .auth import api_user

TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-excel": "xls",
    "application/xml": "xml",
    "text/xml": "xml",
}


def _true(name: str) -> bool:
    return request.args.get(name, "").strip().lower() == "true"


@bp.post("/v1/projects/<int:project_id>/forms")
@declare(COORDINATORS)
def form_create(project_id: int) -> Response:
    user = api_user()
    rt = runtime()
    if user.role not in ("admin", "coordinator"):
        raise Problem(403, "403.1", "Only administrators and coordinators publish forms.")
    if not _true("publish"):
        raise Problem(501, "501.1", "Form drafts are not available on this server yet: send the form with "
                      "?publish=true to publish it at once (a new version of an existing form_id replaces "
                      "the current one).")
    ext = TYPES.get(request.mimetype)
    if ext is None:
        raise Problem(415, "415.1", "Send the form as an XLSForm (.xlsx, Content-Type application/vnd.openxmlformats-"
                      "officedocument.spreadsheetml.sheet; or .xls, application/vnd.ms-excel) or an XForm "
                      "(application/xml).")
    limit = int(rt.config["MAX_UPLOAD_BYTES"])
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise Problem(413, "413.1", f"The form file is larger than {limit // (1024 * 1024)} MB.")
    if not data:
        raise Problem(400, "400.2", "The request body is empty: send the form file as the body.")
    # pyxform takes the form id from the file name when the settings sheet has none (Central's header).
    stem = unquote(request.headers.get("X-XlsForm-FormId-Fallback", "")).strip() or "form"
    filename = f"{stem}.{ext}"
    validate = setup.validate_setting(rt)
    if ext != "xml" and not _true("ignoreWarnings"):
        compiled = form_service.compile_upload(data, filename, validate)
        if compiled.warnings:
            raise Problem(400, "400.16", "The XLSForm is valid, but there are warnings: fix them, or send it again "
                          "with ?ignoreWarnings=true.", warnings={"xlsFormWarnings": list(compiled.warnings)})
    with rt.db.write() as s:
        central.get_project(s, user, project_id)  # 404 for another project
        res = form_service.publish_form(s, rt.store, project_id=project_id, data=data, filename=filename, user=user,
                                        validate=validate)
        if res.created:
            audit.record(s, user, "form.publish", f"form:{res.form.xml_form_id}", request.remote_addr or "",
                         version=res.version.version, filename=filename, via="api")
        return jsonify(central.form_json(res.form))
