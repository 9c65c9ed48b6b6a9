"""`GET /v1/projects/{p}/forms/{f}/submissions.geojson`: a form's locations for a mapping tool, as
Central serves them (app/central/geojson.py), scoped and masked like every export, with an ETag.

Filters as Central's: `fieldpath` (repeatable, or `all`), `submissionID`, `submitterId`, `reviewState`
(repeatable), `start__gt` / `start__gte` / `end__lt` / `end__lte` on the submission date, `limit`,
`deleted=false`. Newest first.
"""
from __future__ import annotations

import json
from itertools import islice
from typing import Any

from flask import Response, request

from app import params, problems
from app.central import geojson as geo
from app.central import shapes as central
from app.central.odata import REVIEW_FROM_CENTRAL
from app.models import Submission
from app.routeaccess import READERS
from app.services import access
from app.services.schemas import schema_of

from . import Call, endpoint, etags

FORM = "/v1/projects/<int:project_id>/forms/<xml_form_id>"
KNOWN = {"fieldpath", "submissionID", "submitterId", "reviewState", "start__gt", "start__gte", "end__lt",
         "end__lte", "limit", "deleted"}


def _filtered(q: Any) -> Any:
    unknown = sorted(k for k in request.args if k not in KNOWN)
    if unknown:
        raise problems.GEOJSON_PARAMETER_UNKNOWN(name=params.clip(unknown[0], 40), known=", ".join(sorted(KNOWN)))
    if (ids := request.args.getlist("submissionID")):
        q = q.where(Submission.instance_id.in_(ids))
    if (who := request.args.getlist("submitterId")):
        q = q.where(Submission.submitter_id.in_([params.integer(w, "submitterId") for w in who]))
    if (states := request.args.getlist("reviewState")):
        unknown_states = [s for s in states if s not in REVIEW_FROM_CENTRAL and s != "null"]
        if unknown_states:
            raise problems.GEOJSON_REVIEW_STATE_UNKNOWN(state=params.clip(unknown_states[0], 40),
                                                        known=", ".join(REVIEW_FROM_CENTRAL))
        q = q.where(Submission.review_state.in_([REVIEW_FROM_CENTRAL.get(s, "received") for s in states]))
    for name, test in (("start__gt", Submission.created_at.__gt__), ("start__gte", Submission.created_at.__ge__),
                       ("end__lt", Submission.created_at.__lt__), ("end__lte", Submission.created_at.__le__)):
        if (raw := request.args.get(name)):
            q = q.where(test(params.moment(raw, name)))
    if request.args.get("deleted", "false").strip().lower() != "false":
        raise problems.GEOJSON_DELETED_UNSUPPORTED()
    return q


@endpoint(f"{FORM}/submissions.geojson", roles=READERS, scoped=True,
          note="the caller's regions; sensitive questions left out unless the caller may see them")
def submissions_geojson(call: Call, project_id: int, xml_form_id: str) -> Any:
    s, user = call.session, call.user
    form = central.get_form(s, user, project_id, xml_form_id)
    schema = schema_of(form.current_version)  # type: ignore[arg-type]
    fields, collection = geo.chosen_fields(schema, request.args.getlist("fieldpath"))
    limit = params.integer(request.args.get("limit"), "limit", default=None)
    q = _filtered(central.submissions_query(user, form))
    tag = etags.etag_for(user, [form.current_version_id, etags.submissions_fingerprint(s, q)])
    if (unchanged := etags.not_modified(tag)) is not None:
        return unchanged
    q = q.order_by(Submission.created_at.desc(), Submission.id.desc())
    red = access.Redactor(s, user, project_id)
    result = s.execute(q.execution_options(yield_per=500))
    try:
        rows = ((sub.instance_id, {} if sv.encrypted_file else red.values(schema, sv.data)) for sub, sv, *_ in result)
        found = list(islice(geo.features(rows, fields, collection), limit))  # `limit` features, not rows
    finally:
        result.close()  # a limit may stop before the last row: the server-side cursor is closed here
    access.audit_unmasked(call.rt.db, user, red, "geojson.read", f"form:{xml_form_id}", call.ip,
                          features=len(found))
    body = json.dumps({"type": "FeatureCollection", "features": found}, ensure_ascii=False)
    return etags.tagged(Response(body, content_type="application/geo+json"), tag)
