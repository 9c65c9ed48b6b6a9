"""Entity lists written through Central's API (app/central/entities.py): admins and coordinators,
in their regions; every change a new entity version, audited.

    POST   /v1/projects/{p}/datasets                              {"name", "approvalRequired"?}
    POST   /v1/projects/{p}/datasets/{name}/properties            {"name"}
    POST   /v1/projects/{p}/datasets/{name}/entities              {"uuid"?, "label", "data"} or {"entities": [...]}
    PATCH  /v1/projects/{p}/datasets/{name}/entities/{uuid}       ?baseVersion=N | ?force=true [&resolve=true]
    DELETE /v1/projects/{p}/datasets/{name}/entities/{uuid}
    POST   /v1/projects/{p}/datasets/{name}/entities/{uuid}/restore
    POST   /v1/projects/{p}/datasets/{name}/entities/bulk-delete  {"ids": [...]} → {"count": n}
    POST   /v1/projects/{p}/datasets/{name}/entities/bulk-restore {"ids": [...]} → {"count": n}
    GET    /v1/projects/{p}/datasets/{name}/entities/{uuid}/diffs | /audits
"""
from __future__ import annotations

from typing import Any

from flask import request

from app.central import datasets as datasets_api
from app.central import entities as entity_writes
from app.routeaccess import COORDINATORS, READERS
from app.services import access

from . import Call, endpoint
from .bodies import MAX_JSON, json_body

DS = "/v1/projects/<int:project_id>/datasets"
MAX_ENTITIES_JSON = 100 * 1024 * 1024  # as Central's entities endpoint


def _body(limit: int = MAX_JSON) -> dict[str, Any]:
    return json_body(limit, empty_ok=request.method == "PATCH")


def _flag(name: str) -> bool:
    return request.args.get(name, "").strip().lower() == "true"


@endpoint(DS, roles=COORDINATORS, methods=["POST"], tx="write")
def dataset_create(call: Call, project_id: int) -> Any:
    ds = entity_writes.create_dataset(call.session, call.user, project_id, _body(), ip=call.ip)
    return datasets_api.dataset_json(call.session, ds)


@endpoint(f"{DS}/<name>/properties", roles=COORDINATORS, methods=["POST"], tx="write")
def dataset_property_create(call: Call, project_id: int, name: str) -> Any:
    entity_writes.add_property(call.session, call.user, project_id, name, _body(), ip=call.ip)


@endpoint(f"{DS}/<name>/entities", roles=COORDINATORS, methods=["POST"], scoped=True, tx="write",
          note="new entities must lie in the caller's regions")
def entity_create(call: Call, project_id: int, name: str) -> Any:
    body = _body(MAX_ENTITIES_JSON)
    ds, uids = entity_writes.create_entities(call.session, call.user, project_id, name, body, ip=call.ip)
    if "entities" in body:
        return None
    return datasets_api.entity_json(datasets_api.get_entity(call.session, call.user, ds, uids[0]))


@endpoint(f"{DS}/<name>/entities/<uid>", roles=COORDINATORS, methods=["PATCH"], scoped=True, tx="write")
def entity_update(call: Call, project_id: int, name: str, uid: str) -> Any:
    ds = entity_writes.update_entity(call.session, call.user, project_id, name, uid, _body(),
                                     base_version=request.args.get("baseVersion"), force=_flag("force"),
                                     resolve=_flag("resolve"), ip=call.ip)
    return datasets_api.entity_json(datasets_api.get_entity(call.session, call.user, ds, uid))


@endpoint(f"{DS}/<name>/entities/<uid>", roles=COORDINATORS, methods=["DELETE"], scoped=True, tx="write")
def entity_delete(call: Call, project_id: int, name: str, uid: str) -> Any:
    entity_writes.delete_entity(call.session, call.user, project_id, name, uid, ip=call.ip)


@endpoint(f"{DS}/<name>/entities/<uid>/restore", roles=COORDINATORS, methods=["POST"], scoped=True, tx="write")
def entity_restore(call: Call, project_id: int, name: str, uid: str) -> Any:
    entity_writes.restore_entity(call.session, call.user, project_id, name, uid, ip=call.ip)


@endpoint(f"{DS}/<name>/entities/bulk-delete", roles=COORDINATORS, methods=["POST"], scoped=True, tx="write",
          note="ids outside the caller's regions are skipped, as absent ones")
def entity_bulk_delete(call: Call, project_id: int, name: str) -> Any:
    return entity_writes.bulk(call.session, call.user, project_id, name, _body(MAX_ENTITIES_JSON), restore=False,
                              ip=call.ip)


@endpoint(f"{DS}/<name>/entities/bulk-restore", roles=COORDINATORS, methods=["POST"], scoped=True, tx="write",
          note="ids outside the caller's regions are skipped, as absent ones")
def entity_bulk_restore(call: Call, project_id: int, name: str) -> Any:
    return entity_writes.bulk(call.session, call.user, project_id, name, _body(MAX_ENTITIES_JSON), restore=True,
                              ip=call.ip)


@endpoint(f"{DS}/<name>/entities/<uid>/diffs", roles=READERS, scoped=True)
def entity_diffs(call: Call, project_id: int, name: str, uid: str) -> Any:
    ds = datasets_api.get_dataset(call.session, call.user, project_id, name)
    red = access.Redactor(call.session, call.user, project_id)
    return entity_writes.diffs(call.session, datasets_api.get_entity(call.session, call.user, ds, uid)[0], red,
                               ds.name)


@endpoint(f"{DS}/<name>/entities/<uid>/audits", roles=READERS, scoped=True)
def entity_audits(call: Call, project_id: int, name: str, uid: str) -> Any:
    ds = datasets_api.get_dataset(call.session, call.user, project_id, name)
    return entity_writes.audits(call.session, datasets_api.get_entity(call.session, call.user, ds, uid)[0])
