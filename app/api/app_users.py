"""App users (our collectors) and form assignments in Central's shapes (app/central/app_users.py).

    GET|POST /v1/projects/{p}/app-users             list / create {"displayName", "regions"?}
    DELETE   /v1/projects/{p}/app-users/{id}
    GET      /v1/projects/{p}/forms/{f}/assignments[/{role}]
    POST|DELETE /v1/projects/{p}/forms/{f}/assignments/{role}/{actorId}   role: app-user or 2
"""
from __future__ import annotations

from typing import Any

from app.central import app_users as svc
from app.routeaccess import COORDINATORS

from . import Call, endpoint
from .bodies import json_body

FORM = "/v1/projects/<int:project_id>/forms/<xml_form_id>"


@endpoint("/v1/projects/<int:project_id>/app-users", roles=COORDINATORS, scoped=True,
          note="coordinators: collectors with a region inside theirs")
def app_users(call: Call, project_id: int) -> Any:
    return svc.list_app_users(call.session, call.user, project_id, call.rt.config["SECRET_KEY"])


@endpoint("/v1/projects/<int:project_id>/app-users", roles=COORDINATORS, methods=["POST"], scoped=True, tx="write",
          note="the new collector gets the creator's regions unless narrowed")
def app_user_create(call: Call, project_id: int) -> Any:
    return svc.create_app_user(call.session, call.user, project_id, json_body(), call.rt.config["DIGEST_REALM"],
                               call.rt.config["SECRET_KEY"], ip=call.ip)


@endpoint("/v1/projects/<int:project_id>/app-users/<int:actor_id>", roles=COORDINATORS, methods=["DELETE"],
          scoped=True, tx="write")
def app_user_delete(call: Call, project_id: int, actor_id: int) -> Any:
    svc.delete_app_user(call.session, call.user, project_id, actor_id, ip=call.ip)


@endpoint(f"{FORM}/assignments", roles=COORDINATORS, scoped=True)
def form_assignments(call: Call, project_id: int, xml_form_id: str) -> Any:
    return svc.form_assignments(call.session, call.user, project_id, xml_form_id)


@endpoint(f"{FORM}/assignments/<role>", roles=COORDINATORS, scoped=True)
def form_assignments_of_role(call: Call, project_id: int, xml_form_id: str, role: str) -> Any:
    return svc.form_assignments(call.session, call.user, project_id, xml_form_id, role)


@endpoint(f"{FORM}/assignments/<role>/<int:actor_id>", roles=COORDINATORS, methods=["POST"], scoped=True, tx="write")
def form_assign(call: Call, project_id: int, xml_form_id: str, role: str, actor_id: int) -> Any:
    svc.assign(call.session, call.user, project_id, xml_form_id, role, actor_id, ip=call.ip)


@endpoint(f"{FORM}/assignments/<role>/<int:actor_id>", roles=COORDINATORS, methods=["DELETE"], scoped=True,
          tx="write")
def form_unassign(call: Call, project_id: int, xml_form_id: str, role: str, actor_id: int) -> Any:
    svc.unassign(call.session, call.user, project_id, xml_form_id, role, actor_id, ip=call.ip)
