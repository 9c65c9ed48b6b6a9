"""`GET /v1/projects/{p}/forms/{f}/submissions.geojson`: a form's locations for a mapping tool, as
Central serves them (app/central/geojson.py), scoped and masked like every export, with an ETag.
Central's filters (app.params.geojson_query); newest first."""
from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from app import params
from app.central import geojson as geo
from app.central import shapes as central
from app.routeaccess import READERS
from app.services import access

from . import Call, endpoint, etags

FORM = "/v1/projects/<int:project_id>/forms/<xml_form_id>"


@endpoint(f"{FORM}/submissions.geojson", roles=READERS, scoped=True,
          note="the caller's regions; sensitive questions left out unless the caller may see them")
def submissions_geojson(call: Call, project_id: int, xml_form_id: str) -> Any:
    s, user = call.session, call.user
    form = central.get_form(s, user, project_id, xml_form_id)
    query = params.geojson_query(request.args)
    q = geo.submissions_query(user, form, query)
    tag = etags.etag_for(user, [form.current_version_id, etags.submissions_fingerprint(s, q)])
    if (unchanged := etags.not_modified(tag)) is not None:
        return unchanged
    body, red = geo.collection(s, user, form, query, q)
    access.audit_unmasked(call.rt.db, user, red, "geojson.read", f"form:{xml_form_id}", call.ip,
                          features=len(body["features"]))
    return etags.tagged(Response(json.dumps(body, ensure_ascii=False), content_type="application/geo+json"), tag)
