"""App users (our collectors) and form assignments in Central's shapes (app/services/app_users.py).

    GET|POST /v1/projects/{p}/app-users             list / create {"displayName", "regions"?}
    DELETE   /v1/projects/{p}/app-users/{id}
    GET      /v1/projects/{p}/forms/{f}/assignments[/{role}]
    POST|DELETE /v1/projects/{p}/forms/{f}/assignments/{role}/{actorId}   role: app-user or 2
"""
from __future__ import annotations

from flask import Response, jsonify, request

from app.central import app_users as svc
from app.routeaccess import COORDINATORS, declare
from app.runtime import runtime

from . import bp
from .auth import api_user
from .submissions_write import _json_body

FORM = "/v1/projects/<int:project_id>/forms/<xml_form_id>"


def _ip() -> str:
    return request.remote_addr or ""


@bp.get("/v1/projects/<int:project_id>/app-users")
@declare(COORDINATORS, scoped=True, note="coordinators: collectors with a region inside theirs")
def app_users(project_id: int) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify(svc.list_app_users(s, user, project_id))


@bp.post("/v1/projects/<int:project_id>/app-users")
@declare(COORDINATORS, scoped=True, note="the new collector gets the creator's regions unless narrowed")
def app_user_create(project_id: int) -> Response:
    user = api_user()
    body = _json_body()
    rt = runtime()
    with rt.db.write() as s:
        return jsonify(svc.create_app_user(s, user, project_id, body, rt.config["DIGEST_REALM"], ip=_ip()))


@bp.delete("/v1/projects/<int:project_id>/app-users/<int:actor_id>")
@declare(COORDINATORS, scoped=True)
def app_user_delete(project_id: int, actor_id: int) -> Response:
    user = api_user()
    with runtime().db.write() as s:
        svc.delete_app_user(s, user, project_id, actor_id, ip=_ip())
    return jsonify({"success": True})


@bp.get(f"{FORM}/assignments")
@declare(COORDINATORS, scoped=True)
def form_assignments(project_id: int, xml_form_id: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify(svc.form_assignments(s, user, project_id, xml_form_id))


@bp.get(f"{FORM}/assignments/<role>")
@declare(COORDINATORS, scoped=True)
def form_assignments_of_role(project_id: int, xml_form_id: str, role: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify(svc.form_assignments(s, user, project_id, xml_form_id, role))


@bp.post(f"{FORM}/assignments/<role>/<int:actor_id>")
@declare(COORDINATORS, scoped=True)
def form_assign(project_id: int, xml_form_id: str, role: str, actor_id: int) -> Response:
    user = api_user()
    with runtime().db.write() as s:
        svc.assign(s, user, project_id, xml_form_id, role, actor_id, ip=_ip())
    return jsonify({"success": True})


@bp.delete(f"{FORM}/assignments/<role>/<int:actor_id>")
@declare(COORDINATORS, scoped=True)
def form_unassign(project_id: int, xml_form_id: str, role: str, actor_id: int) -> Response:
    user = api_user()
    with runtime().db.write() as s:
        svc.unassign(s, user, project_id, xml_form_id, role, actor_id, ip=_ip())
    return jsonify({"success": True})
