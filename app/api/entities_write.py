"""Entity lists written through Central's API (app/services/entity_writes.py): admins and coordinators,
in their regions; every change a new entity version, audited.

    POST   /v1/projects/{p}/datasets                              {"name", "approvalRequired"?}
    POST   /v1/projects/{p}/datasets/{name}/properties            {"name"}
    POST   /v1/projects/{p}/datasets/{name}/entities              {"uuid"?, "label", "data"} or {"entities": [...]}
    PATCH  /v1/projects/{p}/datasets/{name}/entities/{uuid}       ?baseVersion=N | ?force=true [&resolve=true]
    DELETE /v1/projects/{p}/datasets/{name}/entities/{uuid}
    POST   /v1/projects/{p}/datasets/{name}/entities/{uuid}/restore
    GET    /v1/projects/{p}/datasets/{name}/entities/{uuid}/diffs | /audits
"""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from app.central import datasets as datasets_api
from app.central import entities as entity_writes
from app.errors import Problem
from app.routeaccess import COORDINATORS, READERS, declare
from app.runtime import runtime

from . import bp
from .auth import api_user

DS = "/v1/projects/<int:project_id>/datasets"
MAX_ENTITIES_JSON = 100 * 1024 * 1024  # as Central's entities endpoint
MAX_JSON = 250 * 1024


def _ip() -> str:
    return request.remote_addr or ""


def _body(limit: int = MAX_JSON) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > limit:
        raise Problem(400, "400.36", "Request body too large.")
    if not request.get_data(cache=True) and request.method == "PATCH":
        return {}
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise Problem(400, "400.1", "Send a JSON object as the request body.")
    return body


def _flag(name: str) -> bool:
    return request.args.get(name, "").strip().lower() == "true"


@bp.post(DS)
@declare(COORDINATORS)
def dataset_create(project_id: int) -> Response:
    user = api_user()
    body = _body()
    with runtime().db.write() as s:
        ds = entity_writes.create_dataset(s, user, project_id, body, ip=_ip())
        return jsonify(datasets_api.dataset_json(s, ds))


@bp.post(f"{DS}/<name>/properties")
@declare(COORDINATORS)
def dataset_property_create(project_id: int, name: str) -> Response:
    user = api_user()
    body = _body()
    with runtime().db.write() as s:
        entity_writes.add_property(s, user, project_id, name, body, ip=_ip())
    return jsonify({"success": True})


@bp.post(f"{DS}/<name>/entities")
@declare(COORDINATORS, scoped=True, note="new entities must lie in the caller's regions")
def entity_create(project_id: int, name: str) -> Response:
    user = api_user()
    body = _body(MAX_ENTITIES_JSON)
    with runtime().db.write() as s:
        ds, uids = entity_writes.create_entities(s, user, project_id, name, body, ip=_ip())
        if "entities" in body:
            return jsonify({"success": True})
        return jsonify(datasets_api.entity_json(datasets_api.get_entity(s, user, ds, uids[0])))


@bp.patch(f"{DS}/<name>/entities/<uid>")
@declare(COORDINATORS, scoped=True)
def entity_update(project_id: int, name: str, uid: str) -> Response:
    user = api_user()
    body = _body()
    with runtime().db.write() as s:
        ds = entity_writes.update_entity(s, user, project_id, name, uid, body,
                                         base_version=request.args.get("baseVersion"), force=_flag("force"),
                                         resolve=_flag("resolve"), ip=_ip())
        return jsonify(datasets_api.entity_json(datasets_api.get_entity(s, user, ds, uid)))


@bp.delete(f"{DS}/<name>/entities/<uid>")
@declare(COORDINATORS, scoped=True)
def entity_delete(project_id: int, name: str, uid: str) -> Response:
    user = api_user()
    with runtime().db.write() as s:
        entity_writes.delete_entity(s, user, project_id, name, uid, ip=_ip())
    return jsonify({"success": True})


@bp.post(f"{DS}/<name>/entities/<uid>/restore")
@declare(COORDINATORS, scoped=True)
def entity_restore(project_id: int, name: str, uid: str) -> Response:
    user = api_user()
    with runtime().db.write() as s:
        entity_writes.restore_entity(s, user, project_id, name, uid, ip=_ip())
    return jsonify({"success": True})


@bp.get(f"{DS}/<name>/entities/<uid>/diffs")
@declare(READERS, scoped=True)
def entity_diffs(project_id: int, name: str, uid: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        ds = datasets_api.get_dataset(s, user, project_id, name)
        return jsonify(entity_writes.diffs(s, datasets_api.get_entity(s, user, ds, uid)[0]))


@bp.get(f"{DS}/<name>/entities/<uid>/audits")
@declare(READERS, scoped=True)
def entity_audits(project_id: int, name: str, uid: str) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        ds = datasets_api.get_dataset(s, user, project_id, name)
        return jsonify(entity_writes.audits(s, datasets_api.get_entity(s, user, ds, uid)[0]))
