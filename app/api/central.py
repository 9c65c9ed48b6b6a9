"""ODK Central-compatible REST endpoints used by pyodk, ruODK and BI tools (docs/architecture.md, "Central's API")."""
from __future__ import annotations

from typing import Any

from flask import request

from app.central import shapes as central
from app.central import submissions as submissions_api
from app.routeaccess import COLLECTORS, READERS
from app.services import forms as form_service
from app.services.submissions import records

from . import Call, endpoint

FORM = "/v1/projects/<int:project_id>/forms/<xml_form_id>"


@endpoint("/v1/users/current", roles=COLLECTORS, tx="none")
def users_current(call: Call) -> Any:
    body = central.user_json(call.user)
    if call.extended:
        body["verbs"] = central.verbs_of(call.user)
    return body


@endpoint("/v1/projects", roles=READERS, scoped=True, note="X-Extended-Metadata counts only the caller's regions")
def projects(call: Call) -> Any:
    found = central.projects_for(call.session, call.user)
    if call.extended:
        return [central.project_extended(call.session, call.user, p) for p in found]
    return [central.project_json(p) for p in found]


@endpoint("/v1/projects/<int:project_id>", roles=READERS, scoped=True)
def project(call: Call, project_id: int) -> Any:
    p = central.get_project(call.session, call.user, project_id)
    return central.project_extended(call.session, call.user, p) if call.extended else central.project_json(p)


@endpoint("/v1/projects/<int:project_id>/forms", roles=READERS, scoped=True)
def forms(call: Call, project_id: int) -> Any:
    central.get_project(call.session, call.user, project_id)
    found = [f for f in form_service.list_forms(call.session, project_id) if f.current_version is not None]
    if call.extended:
        return [central.form_extended(call.session, call.user, f) for f in found]
    return [central.form_json(f) for f in found]


@endpoint(FORM, roles=READERS, scoped=True)
def form(call: Call, project_id: int, xml_form_id: str) -> Any:
    f = central.get_form(call.session, call.user, project_id, xml_form_id)
    return central.form_extended(call.session, call.user, f) if call.extended else central.form_json(f)


@endpoint(f"{FORM}/submissions", roles=READERS, scoped=True)
def submissions(call: Call, project_id: int, xml_form_id: str) -> Any:
    f = central.get_form(call.session, call.user, project_id, xml_form_id)
    return list(central.list_submissions(call.session, call.user, f, deleted=request.args.get("deleted") == "true"))


@endpoint(f"{FORM}/submissions/<path:instance_id>/attachments", roles=COLLECTORS, scoped=True,
          note="collectors: only their own submissions (pyodk lists them after a create)")
def submission_attachments(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    s, user = call.session, call.user
    if user.role == "collector":
        _, sv = submissions_api.find_writable(s, user, project_id, xml_form_id, instance_id)
    else:
        f = central.get_form(s, user, project_id, xml_form_id)
        _, sv = central.get_submission(s, user, f, instance_id)
    withheld = records.withheld_files(s, project_id, user, sv)
    return [{"name": a.name, "exists": a.blob_key is not None} for a in sv.attachments if a.name not in withheld]


@endpoint(f"{FORM}/submissions/<path:instance_id>", roles=READERS, scoped=True)
def submission(call: Call, project_id: int, xml_form_id: str, instance_id: str) -> Any:
    f = central.get_form(call.session, call.user, project_id, xml_form_id)
    sub, sv = central.get_submission(call.session, call.user, f, instance_id)
    return central.submission_json(sub, sv, records.InstanceNames(call.session, call.user, project_id))
