"""ODK Central-compatible REST endpoints used by pyodk, ruODK and BI tools (protocol.md §8.2)."""
from __future__ import annotations

from flask import Response, jsonify

from app.routeaccess import COLLECTORS, READERS, declare
from app.runtime import runtime
from app.services import central, records

from . import bp
from .auth import api_user


@bp.get("/v1/users/current")
@declare(COLLECTORS)
def users_current() -> Response:
    return jsonify(central.user_json(api_user()))


@bp.get("/v1/projects")
@declare(READERS)
def projects() -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify([central.project_json(p) for p in central.projects_for(s, user)])


@bp.get("/v1/projects/<int:project_id>")
@declare(READERS)
def project(project_id: int) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify(central.project_json(central.get_project(s, user, project_id)))


@bp.get("/v1/projects/<int:project_id>/forms")
@declare(READERS)
def forms(project_id: int) -> Response:
    from app.services import forms as form_service

    user = api_user()
    with runtime().db.session() as s:
        central.get_project(s, user, project_id)
        return jsonify([central.form_json(f) for f in form_service.list_forms(s, project_id)
                        if f.current_version is not None])


@bp.get("/v1/projects/<int:project_id>/forms/<xml_form_id>")
@declare(READERS)
def form(project_id: int, xml_form_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify(central.form_json(central.get_form(s, user, project_id, xml_form_id)))


@bp.get("/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions")
@declare(READERS, scoped=True)
def submissions(project_id: int, xml_form_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        f = central.get_form(s, user, project_id, xml_form_id)
        return jsonify(list(central.list_submissions(s, user, f)))


@bp.get("/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions/<path:instance_id>/attachments")
@declare(READERS, scoped=True)
def submission_attachments(project_id: int, xml_form_id: str, instance_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
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
