"""Entity lists (datasets) and their entities in ODK Central's JSON and OData shapes (docs/odk-protocol.md,
*Central's REST API and OData*).

Reads; the API's writes are in app/services/entity_writes.py. Everything is
region-scoped like submissions: an admin sees every entity, a manager or coordinator only the
entities whose region code (Entity.region_code) lies in one of their regions.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session, aliased

from app import problems
from app.central import odata
from app.central.shapes import get_project, iso
from app.models import Dataset, Entity, EntityVersion, Form, FormVersion, SubmissionVersion, User
from app.services import access
from app.services.children import trash
from app.services.schemas import schema_of

_first = aliased(EntityVersion, name="first_version")
_current = aliased(EntityVersion, name="current_version")
_first_sv = aliased(SubmissionVersion, name="first_sv")
_current_sv = aliased(SubmissionVersion, name="current_sv")
_creator = aliased(User, name="creator")


def odata_name(prop: str) -> str:
    """Central's OData-safe property name (XML names may hold '.' and '-', OData identifiers not)."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in prop)


# ---------------------------------------------------------------- datasets


def get_dataset(session: Session, user: User, project_id: int, name: str) -> Dataset:
    get_project(session, user, project_id)
    ds = session.scalar(select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name))
    if ds is None:
        raise problems.NOT_FOUND()
    return ds


def _visible(user: User, ds_id: Any) -> Any:
    return and_(Entity.dataset_id == ds_id, Entity.deleted_at.is_(None), access.region_filter(user, Entity.region_code))


def list_datasets(session: Session, user: User, project_id: int) -> list[dict[str, Any]]:
    get_project(session, user, project_id)
    stats = (select(Entity.dataset_id, func.count().label("n"), func.max(Entity.created_at).label("last"),
                    func.count(Entity.conflict).label("conflicts"))
             .where(Entity.deleted_at.is_(None), access.region_filter(user, Entity.region_code))
             .group_by(Entity.dataset_id).subquery())
    rows = session.execute(select(Dataset, stats.c.n, stats.c.last, stats.c.conflicts)
                           .outerjoin(stats, stats.c.dataset_id == Dataset.id)
                           .where(Dataset.project_id == project_id).order_by(Dataset.name))
    return [{"name": ds.name, "projectId": ds.project_id, "createdAt": iso(ds.created_at), "approvalRequired": False,
             "ownerOnly": False, "entities": int(n or 0), "lastEntity": iso(last), "conflicts": int(conflicts or 0)}
            for ds, n, last, conflicts in rows]


def _forms_of(session: Session, project_id: int, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                     dict[str, list[tuple[str, datetime]]]]:
    """(linkedForms, sourceForms, property → [(xmlFormId, publishedAt)]) from the published versions."""
    linked: list[dict[str, Any]] = []
    source: list[dict[str, Any]] = []
    props: dict[str, list[tuple[str, datetime]]] = {}
    forms = session.execute(select(Form, FormVersion).join(FormVersion, FormVersion.id == Form.current_version_id)
                            .where(Form.project_id == project_id).order_by(Form.xml_form_id))
    for form, fv in forms:
        ref = {"xmlFormId": form.xml_form_id, "name": fv.title}
        if any(a.dataset == name for a in fv.attachments):
            linked.append(ref)
        schema = schema_of(fv)
        if schema.entity is not None and schema.entity.dataset == name:
            source.append(ref)
            for prop in schema.entity.properties.values():
                props.setdefault(prop, []).append((form.xml_form_id, fv.published_at))
    return linked, source, props


def dataset_json(session: Session, ds: Dataset) -> dict[str, Any]:
    linked, source, by_prop = _forms_of(session, ds.project_id, ds.name)
    properties = []
    for prop in ds.properties or []:
        uses = by_prop.get(prop, [])
        published = min((at for _, at in uses), default=ds.created_at)
        properties.append({"name": prop, "odataName": odata_name(prop), "publishedAt": iso(published),
                           "forms": [fid for fid, _ in uses]})
    return {"name": ds.name, "projectId": ds.project_id, "createdAt": iso(ds.created_at), "approvalRequired": False,
            "ownerOnly": False, "properties": properties, "linkedForms": linked, "sourceForms": source}


# ---------------------------------------------------------------- entities


def entities_query(user: User, ds: Dataset, include_deleted: bool = False) -> Select[Any]:
    """Entity + current version + who created it (first version's submitter) + current version's client."""
    # A version comes from a submission (its submitter) or from the API (EntityVersion.user_id).
    creator_id = func.coalesce(_first_sv.submitter_id, _first.user_id)
    q: Any = (select(Entity, _current.created_at, _current.base_version, _current.conflicting_properties,
                func.coalesce(_current_sv.submitter_id, _current.user_id), _current_sv.user_agent, creator_id,
                _creator.display_name, _creator.username)
         .outerjoin(_current, and_(_current.entity_id == Entity.id, _current.version == Entity.version))
         .outerjoin(_current_sv, _current_sv.id == _current.submission_version_id)
         .outerjoin(_first, and_(_first.entity_id == Entity.id, _first.version == 1))
         .outerjoin(_first_sv, _first_sv.id == _first.submission_version_id)
         .outerjoin(_creator, _creator.id == creator_id)
         .where(Entity.dataset_id == ds.id, access.region_filter(user, Entity.region_code)))
    if not include_deleted:
        q = q.where(Entity.deleted_at.is_(None))
    return q


def _updated_at(entity: Entity) -> datetime | None:
    return entity.updated_at if entity.version > 1 else None


def _shown(red: access.Redactor | None, ds_name: str, e: Any, label: str, data: dict[str, Any]
           ) -> tuple[str, dict[str, Any]]:
    """Label and properties as this user may see them (sensitive ones masked)."""
    if red is None:
        return label, dict(data or {})
    return red.child_label(ds_name, e.uuid, label), red.entity_properties(ds_name, dict(data or {}))


def entity_json(row: Any, red: access.Redactor | None = None, ds_name: str = "") -> dict[str, Any]:
    e, cur_at, base, conflicting, cur_submitter, user_agent, creator_id, _name, _username = row
    label, data = _shown(red, ds_name, e, e.label, e.data)
    return {
        "uuid": e.uuid, "creatorId": creator_id, "createdAt": iso(e.created_at), "updatedAt": iso(_updated_at(e)),
        "deletedAt": iso(e.deleted_at), "conflict": e.conflict,
        "currentVersion": {
            "label": label, "current": True, "createdAt": iso(cur_at or e.updated_at),
            "creatorId": cur_submitter if cur_submitter is not None else creator_id,
            "userAgent": user_agent or "", "version": e.version, "data": data,
            "baseVersion": base, "conflictingProperties": conflicting,
        },
    }


def list_entities(session: Session, user: User, ds: Dataset, deleted: bool = False) -> Iterator[dict[str, Any]]:
    """The list's entities; with `deleted`, those in the trash instead (Central's `?deleted=true`)."""
    red = access.Redactor(session, user, ds.project_id)
    q = entities_query(user, ds, include_deleted=deleted)
    if deleted:
        q = q.where(trash.in_trash())
    q = q.order_by(Entity.id)
    for row in session.execute(q.execution_options(yield_per=1000)):
        yield entity_json(row, red, ds.name)


def get_entity(session: Session, user: User, ds: Dataset, uid: str) -> Any:
    """The entity row (as entities_query yields it); 404 when absent, deleted or outside the user's regions."""
    row = session.execute(entities_query(user, ds).where(Entity.uuid == uid.strip().lower().removeprefix("uuid:"))
                          ).first()
    if row is None:
        raise problems.NOT_FOUND()
    return row


def versions_json(session: Session, entity: Entity, red: access.Redactor | None = None,
                  ds_name: str = "") -> list[dict[str, Any]]:
    rows = session.execute(select(EntityVersion, SubmissionVersion.submitter_id, SubmissionVersion.user_agent,
                                  SubmissionVersion.instance_id)
                           .outerjoin(SubmissionVersion, SubmissionVersion.id == EntityVersion.submission_version_id)
                           .where(EntityVersion.entity_id == entity.id).order_by(EntityVersion.version))
    out = []
    for v, submitter, user_agent, instance_id in rows:
        label, data = _shown(red, ds_name, entity, v.label, v.data)
        received = _shown(red, ds_name, entity, v.label, v.data_received)[1]
        out.append({
            "label": label, "current": v.version == entity.version, "createdAt": iso(v.created_at),
            "creatorId": submitter if submitter is not None else v.user_id, "userAgent": user_agent or "",
            "version": v.version, "data": data, "dataReceived": received, "baseVersion": v.base_version,
            "trunkVersion": v.trunk_version, "branchId": v.branch_id, "branchBaseVersion": v.branch_base_version,
            "conflict": v.conflict, "conflictingProperties": v.conflicting_properties,
            "source": {"event": {"action": "entity.create" if v.version == 1 else "entity.update.version"},
                       "submission": {"instanceId": instance_id} if instance_id else None,
                       "api": instance_id is None and v.user_id is not None},
        })
    return out


# ---------------------------------------------------------------- OData


def filter_fields() -> dict[str, Any]:
    # __system/creatorId: who made the first version (a submission's submitter or the API user), as Central
    return {"__id": Entity.uuid, "__system/createdAt": Entity.created_at,
            "__system/creatorId": func.coalesce(_first_sv.submitter_id, _first.user_id),
            "__system/updatedAt": case((Entity.version > 1, Entity.updated_at), else_=None),
            "__system/conflict": Entity.conflict, "__system/deletedAt": Entity.deleted_at}


def odata_row(ds: Dataset, row: Any, red: access.Redactor | None = None) -> dict[str, Any]:
    e, _cur_at, _base, _conflicting, _cur_submitter, _ua, creator_id, display_name, username = row
    label, data = _shown(red, ds.name, e, e.label, e.data)
    out: dict[str, Any] = {"__id": e.uuid, "label": label, "__system": {
        "createdAt": iso(e.created_at), "creatorId": str(creator_id) if creator_id is not None else None,
        "creatorName": display_name or username, "updates": e.version - 1, "updatedAt": iso(_updated_at(e)),
        "deletedAt": iso(e.deleted_at), "version": e.version, "conflict": e.conflict}}
    for prop in ds.properties or []:
        value = data.get(prop)
        out[odata_name(prop)] = "" if value is None else value
    return out


def odata_page(session: Session, ds: Dataset, q: Select[Any], page: int | None, skip: int,
               token: dict[str, Any], select_: list[str] | None,
               red: access.Redactor | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the Entities feed in id order; the skiptoken names the last entity's id."""
    after = Entity.id > int(token["id"]) if token.get("id") is not None else None
    result, more = odata.fetch_page(session, q.order_by(Entity.id), page, skip, after)
    rows = [odata.select_fields(odata_row(ds, r, red), select_) for r in result]
    next_token = odata.skiptoken({"id": result[-1][0].id}) if more and result else None
    return rows, next_token


def metadata_xml(ds: Dataset) -> str:
    """EDMX 4.0 of an entity list, as Central serves it: the metadata type plus one Entities type."""
    ns = f"org.opendatakit.user.{ds.name}"
    props = [f'        <Property Name={quoteattr(odata_name(p))} Type="Edm.String"/>' for p in ds.properties or []]
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">',
        "  <edmx:DataServices>",
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="org.opendatakit.entity">',
        '      <ComplexType Name="metadata">',
        *[f'        <Property Name="{n}" Type="{t}"/>' for n, t in (
            ("createdAt", "Edm.DateTimeOffset"), ("creatorId", "Edm.String"), ("creatorName", "Edm.String"),
            ("updates", "Edm.Int64"), ("updatedAt", "Edm.DateTimeOffset"), ("deletedAt", "Edm.DateTimeOffset"),
            ("version", "Edm.Int64"), ("conflict", "Edm.String"))],
        "      </ComplexType>",
        "    </Schema>",
        f'    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace={quoteattr(ns)}>',
        '      <EntityType Name="Entities">',
        '        <Key><PropertyRef Name="__id"/></Key>',
        '        <Property Name="__id" Type="Edm.String"/>',
        '        <Property Name="label" Type="Edm.String"/>',
        '        <Property Name="__system" Type="org.opendatakit.entity.metadata"/>',
        *props,
        "      </EntityType>",
        f"      <EntityContainer Name={quoteattr(ds.name)}>",
        f'        <EntitySet Name="Entities" EntityType={quoteattr(ns + ".Entities")}/>',
        "      </EntityContainer>",
        "    </Schema>",
        "  </edmx:DataServices>",
        "</edmx:Edmx>",
    ]) + "\n"

