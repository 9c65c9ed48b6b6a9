"""Entity lists (datasets) in ODK Central's REST and OData shapes, read-only (docs/odk-protocol.md,
*Central's REST API and OData*).

    GET /v1/projects/{pid}/datasets                              [dataset] with entity counts
    GET /v1/projects/{pid}/datasets/{name}                       dataset with properties and forms
    GET /v1/projects/{pid}/datasets/{name}/entities              [entity]
    GET /v1/projects/{pid}/datasets/{name}/entities/{uuid}       entity
    GET /v1/projects/{pid}/datasets/{name}/entities/{uuid}/versions
    GET /v1/projects/{pid}/datasets/{name}.svc[/$metadata|/Entities]

Writes (datasets, properties, entities) are in app/api/entities_write.py. Region scoping is done in
app/services/datasets_api.py.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from flask import Response, request, stream_with_context
from sqlalchemy import func, select

from app import params, problems
from app.central import datasets as svc
from app.central import odata
from app.central.odata_filter import parse_filter
from app.models import Entity
from app.routeaccess import READERS
from app.runtime import runtime
from app.services import access
from app.services.children.store import list_revision

from . import Call, endpoint, etags
from .odata import MAX_PAGE, URI_COMPONENT_SAFE, check_params, feed_tail, flag, int_arg, odata_response, select_arg

DS = "/v1/projects/<int:project_id>/datasets"


def _base(project_id: int, name: str) -> str:
    origin = (runtime().config["PUBLIC_URL"] or request.host_url).rstrip("/")
    return f"{origin}/v1/projects/{project_id}/datasets/{quote(name, safe=URI_COMPONENT_SAFE)}.svc"


def _json_array(items: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    yield b"["
    first = True
    for item in items:
        yield (b"" if first else b",") + json.dumps(item, ensure_ascii=False).encode()
        first = False
    yield b"]"


@endpoint(DS, roles=READERS, scoped=True)
def datasets(call: Call, project_id: int) -> Any:
    return svc.list_datasets(call.session, call.user, project_id)


@endpoint(f"{DS}/<name>", roles=READERS, scoped=True)
def dataset(call: Call, project_id: int, name: str) -> Any:
    return svc.dataset_json(call.session, svc.get_dataset(call.session, call.user, project_id, name))


@endpoint(f"{DS}/<name>/entities", roles=READERS, scoped=True, tx="none")
def entities(call: Call, project_id: int, name: str) -> Any:
    user = call.user
    s = call.rt.db.bulk_session()  # the read replica when there is one
    try:
        ds = svc.get_dataset(s, user, project_id, name)
        items = svc.list_entities(s, user, ds, deleted=flag("deleted"))
        access.audit_unmasked(call.rt.db, user, access.Redactor(s, user, project_id), "entities.read",
                              f"dataset:{name}", call.ip)
    except BaseException:
        s.close()
        raise

    def body() -> Iterator[bytes]:
        try:
            yield from _json_array(items)
        finally:
            s.close()

    return Response(stream_with_context(body()), content_type="application/json")


@endpoint(f"{DS}/<name>/entities/<uid>", roles=READERS, scoped=True)
def entity(call: Call, project_id: int, name: str, uid: str) -> Any:
    s, user = call.session, call.user
    ds = svc.get_dataset(s, user, project_id, name)
    return svc.entity_json(svc.get_entity(s, user, ds, uid), access.Redactor(s, user, project_id), ds.name)


@endpoint(f"{DS}/<name>/entities/<uid>/versions", roles=READERS, scoped=True)
def entity_versions(call: Call, project_id: int, name: str, uid: str) -> Any:
    s, user = call.session, call.user
    ds = svc.get_dataset(s, user, project_id, name)
    row = svc.get_entity(s, user, ds, uid)
    return svc.versions_json(s, row[0], access.Redactor(s, user, project_id), ds.name)


# ---------------------------------------------------------------- OData


@endpoint(f"{DS}/<name>.svc", roles=READERS, scoped=True)
def dataset_service(call: Call, project_id: int, name: str) -> Any:
    svc.get_dataset(call.session, call.user, project_id, name)
    return odata_response(json.dumps({"@odata.context": f"{_base(project_id, name)}/$metadata",
                                       "value": [{"name": "Entities", "kind": "EntitySet", "url": "Entities"}]}))


@endpoint(f"{DS}/<name>.svc/$metadata", roles=READERS, scoped=True)
def dataset_metadata(call: Call, project_id: int, name: str) -> Any:
    xml = svc.metadata_xml(svc.get_dataset(call.session, call.user, project_id, name))
    return odata_response(xml, "application/xml; charset=utf-8")


@endpoint(f"{DS}/<name>.svc/<table>", roles=READERS, scoped=True)
def dataset_entities_feed(call: Call, project_id: int, name: str, table: str) -> Any:
    check_params()
    if "$wkt" in request.args or request.args.get("$expand", "").strip():
        raise problems.ENTITY_ODATA_UNSUPPORTED()
    s, user = call.session, call.user
    ds = svc.get_dataset(s, user, project_id, name)
    if table != "Entities":
        raise problems.ENTITY_LIST_NO_TABLE(table=table)
    top = int_arg("$top", None)
    skip = int_arg("$skip", 0) or 0
    token = params.decode_skiptoken(request.args.get("$skiptoken"), {"id": int})
    page = min(top, MAX_PAGE) if top is not None else None
    select_ = select_arg()
    filter_text = params.text(request.args.get("$filter"), "$filter", max_len=10_000)
    # As Central: deleted entities only appear when the filter asks about __system/deletedAt.
    q = svc.entities_query(user, ds, include_deleted="__system/deletedAt" in filter_text)
    if filter_text:
        q = q.where(parse_filter(filter_text, svc.filter_fields()))
    tag = etags.etag_for(user, [list_revision(s, ds), *s.execute(q.with_only_columns(
        func.count(Entity.id), func.sum(Entity.id), func.sum(Entity.version), func.max(Entity.updated_at),
        func.max(Entity.deleted_at)).order_by(None)).one()])
    if (unchanged := etags.not_modified(tag)) is not None:
        return unchanged
    count = s.scalar(select(func.count()).select_from(q.subquery())) if flag("$count") else None
    red = access.Redactor(s, user, project_id)
    rows, next_token = svc.odata_page(s, ds, q, page, skip, token, select_, red)
    access.audit_unmasked(call.rt.db, user, red, "entities.read", f"dataset:{name}", call.ip, rows=len(rows))
    base = _base(project_id, name)
    head = {"@odata.context": f"{base}/$metadata#Entities"}
    tail = feed_tail(f"{base}/Entities", next_token, count)
    return etags.tagged(odata_response(odata.stream_json(head, iter(rows), tail)), tag)  # rows: plain dicts
