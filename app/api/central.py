"""ODK Central-compatible REST endpoints used by pyodk, ruODK and BI tools (protocol.md §8.2)."""
from __future__ import annotations

from flask import Response, jsonify, request

from app.central import shapes as central
from app.routeaccess import COLLECTORS, READERS, declare
from app.runtime import runtime
from app.services.submissions import records

from . import bp
from .auth import api_user


@bp.get("/v1/users/current")
@declare(COLLECTORS)
def users_current() -> Response:
    user = api_user()
    body = central.user_json(user)
    if central.extended(request.headers):
        body["verbs"] = central.verbs_of(user)
    return jsonify(body)


@bp.get("/v1/projects")
@declare(READERS, scoped=True, note="X-Extended-Metadata counts only the caller's regions")
def projects() -> Response:
    user = api_user()
    with runtime().db.session() as s:
        if central.extended(request.headers):
            return jsonify([central.project_extended(s, user, p) for p in central.projects_for(s, user)])
        return jsonify([central.project_json(p) for p in central.projects_for(s, user)])


@bp.get("/v1/projects/<int:project_id>")
@declare(READERS, scoped=True)
def project(project_id: int) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        p = central.get_project(s, user, project_id)
        return jsonify(central.project_extended(s, user, p) if central.extended(request.headers)
                       else central.project_json(p))


@bp.get("/v1/projects/<int:project_id>/forms")
@declare(READERS, scoped=True)
def forms(project_id: int) -> Response:
    from app.services import forms as form_service

    user = api_user()
    with runtime().db.session() as s:
        central.get_project(s, user, project_id)
        found = [f for f in form_service.list_forms(s, project_id) if f.current_version is not None]
        if central.extended(request.headers):
            return jsonify([central.form_extended(s, user, f) for f in found])
        return jsonify([central.form_json(f) for f in found])


@bp.get("/v1/projects/<int:project_id>/forms/<xml_form_id>")
@declare(READERS, scoped=True)
def form(project_id: int, xml_form_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        f = central.get_form(s, user, project_id, xml_form_id)
        return jsonify(central.form_extended(s, user, f) if central.extended(request.headers)
                       else central.form_json(f))


@bp.get("/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions")
@declare(READERS, scoped=True)
def submissions(project_id: int, xml_form_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        f = central.get_form(s, user, project_id, xml_form_id)
        return jsonify(list(central.list_submissions(s, user, f)))


@bp.get("/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions/<path:instance_id>/attachments")
@declare(COLLECTORS, scoped=True, note="collectors: only their own submissions (pyodk lists them after a create)")
def submission_attachments(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    from app.central import submissions as submissions_api

    user = api_user()
    with runtime().db.session() as s:
        if user.role == "collector":
            _, sv = submissions_api.find_writable(s, user, project_id, xml_form_id, instance_id)
        else:
            f = central.get_form(s, user, project_id, xml_form_id)
            _, sv = central.get_submission(s, user, f, instance_id)
        withheld = records.withheld_files(s, project_id, user, sv)
        return jsonify([{"name": a.name, "exists": a.blob_key is not None} for a in sv.attachments
                        if a.name not in withheld])


@bp.get("/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions/<path:instance_id>")
@declare(READERS, scoped=True)
def submission(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        f = central.get_form(s, user, project_id, xml_form_id)
        sub, sv = central.get_submission(s, user, f, instance_id)
        return jsonify(central.submission_json(sub, sv))
