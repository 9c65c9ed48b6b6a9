"""OData v4 for submissions, as ODK Central serves it: tables, $metadata, rows (docs/odk-protocol.md,
*Central's REST API and OData*).

Rows come from the relational store (values parsed at ingest); nothing re-parses XML.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from app import problems
from app.central.odata_filter import JsonValue
from forms import FormSchema

EDM = {"int": "Edm.Int64", "decimal": "Edm.Decimal", "boolean": "Edm.Boolean", "date": "Edm.Date",
       "dateTime": "Edm.DateTimeOffset", "geopoint": "Edm.GeographyPoint",
       "geotrace": "Edm.GeographyLineString", "geoshape": "Edm.GeographyPolygon"}
REVIEW_TO_CENTRAL = {"received": None, "has_issues": "hasIssues", "approved": "approved",
                     "rejected": "rejected", "edited": "edited"}
REVIEW_FROM_CENTRAL = {v: k for k, v in REVIEW_TO_CENTRAL.items() if v is not None}


@dataclass(frozen=True)
class Table:
    name: str  # "Submissions" or "Submissions.members.pets"
    repeat: str | None  # repeat path, None for the root table
    parent: str | None  # parent table name


def tables(schema: FormSchema) -> list[Table]:
    out = [Table("Submissions", None, None)]
    root = f"/{schema.root}/"
    names: dict[str, str] = {}
    for rep in schema.repeats:
        rel = rep[len(root):] if rep.startswith(root) else rep.strip("/")
        name = "Submissions." + rel.replace("/", ".")
        names[rep] = name
        parent_rep = next((p for p in sorted(schema.repeats, key=len, reverse=True)
                           if rep.startswith(p + "/")), None)
        out.append(Table(name, rep, names.get(parent_rep, "Submissions") if parent_rep else "Submissions"))
    return out


def table_by_name(schema: FormSchema, name: str) -> Table | None:
    return next((t for t in tables(schema) if t.name == name), None)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"grp/q": 1} → {"grp": {"q": 1}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split("/")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return out


def odata_value(ftype: str | None, value: Any, wkt: bool) -> Any:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if wkt and isinstance(value, dict) and value.get("type") == "Point":
        coords = " ".join(str(c) for c in value.get("coordinates", []))
        return f"POINT ({coords})"
    if isinstance(value, dict) and value.get("type") in ("LineString", "Polygon") and "properties" in value:
        # GeoJSON as Central serves it: the submitted text (kept for CSV exports) stays out
        return {"type": value["type"], "coordinates": value.get("coordinates")}
    if isinstance(value, dict) and value.get("type") == "Point" and "odk" in (value.get("properties") or {}):
        return geojson_point(value)
    return value


def geojson_point(value: dict[str, Any]) -> dict[str, Any]:
    """A stored geopoint as Central's GeoJSON: coordinates and the accuracy, not the submitted text."""
    out: dict[str, Any] = {"type": "Point", "coordinates": value.get("coordinates")}
    if "accuracy" in (value.get("properties") or {}):
        out["properties"] = {"accuracy": value["properties"]["accuracy"]}
    return out


def field_types(schema: FormSchema, repeat: str | None) -> dict[str, str]:
    base = (repeat + "/") if repeat else f"/{schema.root}/"
    return {f.path[len(base):]: f.type for f in schema.fields
            if f.repeat == repeat and f.path.startswith(base) and f.type not in ("group", "repeat")}


def row_id(instance_id: str, repeat: str, row_pk: int) -> str:
    return hashlib.sha1(f"{instance_id}|{repeat}|{row_pk}".encode()).hexdigest()


def shape_values(schema: FormSchema, repeat: str | None, data: dict[str, Any], wkt: bool,
                 nav_prefix: str) -> dict[str, Any]:
    types = field_types(schema, repeat)
    flat = {k: odata_value(types.get(k), v, wkt) for k, v in data.items()}
    body = nest(flat)
    # navigation links to child repeat tables
    base = (repeat + "/") if repeat else f"/{schema.root}/"
    for rep in schema.repeats:
        parent = next((p for p in sorted(schema.repeats, key=len, reverse=True) if rep.startswith(p + "/")), None)
        if parent != repeat or not rep.startswith(base):
            continue
        rel = rep[len(base):].split("/")
        node = body
        for part in rel[:-1]:
            node = node.setdefault(part, {})
        node[f"{rel[-1]}@odata.navigationLink"] = f"{nav_prefix}/{rel[-1]}"
    return body


FILTER_KINDS = {"int": "number", "decimal": "number", "string": "text", "select1": "text", "barcode": "text",
                "date": "date", "dateTime": "date", "time": "text"}


def form_filter_fields(schema: FormSchema, column: Any, hidden: set[str]) -> dict[str, Any]:
    """`$filter` on the form's own questions (CareFile, beyond Central): each question outside repeats whose
    answer is a number, text, a single choice, a date or a time, by its OData path (`age`,
    `grp_assessor/visit_date`). `hidden`: paths the reader may not see (sensitive and derived): not
    filterable, or a filter would tell what is masked."""
    base = f"/{schema.root}/"
    out: dict[str, Any] = {}
    for f in schema.fields:
        kind = FILTER_KINDS.get(f.type)
        if kind is None or f.repeat is not None or not f.path.startswith(base) or f.path in hidden:
            continue
        key = f.path[len(base):]
        out[key] = JsonValue(column, key, kind)
    return out


def skiptoken(payload: dict[str, Any]) -> str:
    """An opaque $skiptoken (base64url JSON). Tokens coming back are read and checked by
    app.params.decode_skiptoken in the HTTP layer (the same format), never here."""
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def nav_key(instance_id: str) -> str:
    return f"Submissions('{quote(instance_id, safe='')}')"


SYSTEM_KEYS = ("submissionDate", "updatedAt", "submitterId", "submitterName", "attachmentsPresent",
               "attachmentsExpected", "status", "reviewState", "deviceId", "edits", "formVersion", "deletedAt")
MAX_SELECT = 200


def selectable(schema: FormSchema, table: Table) -> set[str]:
    """The `$select` paths of a table: its questions (`grp/q`) and their groups, `__id`, and `__system`
    (with its fields) on Submissions or the parent key on a repeat table."""
    base = (table.repeat + "/") if table.repeat else f"/{schema.root}/"
    out = {"__id"}
    if table.repeat is None:
        out |= {"__system", *(f"__system/{k}" for k in SYSTEM_KEYS)}
    else:
        out.add("__" + (table.parent or "Submissions").replace(".", "-") + "-id")
    for f in schema.fields:
        if f.repeat == table.repeat and f.path.startswith(base) and f.type != "repeat":
            rel = f.path[len(base):].split("/")
            out |= {"/".join(rel[:i]) for i in range(1, len(rel) + 1)}
    return out


def check_select(schema: FormSchema, table: Table, select: list[str] | None) -> None:
    """Every `$select` path must name something of the table (400.84 naming it), at most MAX_SELECT."""
    if not select:
        return
    if len(select) > MAX_SELECT:
        raise problems.SELECT_TOO_MANY(limit=MAX_SELECT)
    known = selectable(schema, table)
    for path in select:
        if path not in known:
            raise problems.SELECT_UNKNOWN_PROPERTY(path=path[:60], table=table.name,
                                                   known=", ".join(sorted(p for p in known if "/" not in p)[:20]))


def select_fields(row: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if not select:
        return row
    out: dict[str, Any] = {}
    for path in select:
        parts = path.split("/")
        src: Any = row
        for part in parts:
            src = src.get(part) if isinstance(src, dict) else None
        if src is None and not _has(row, parts):
            continue
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = src
    return out


def _has(row: dict[str, Any], parts: list[str]) -> bool:
    node: Any = row
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def metadata_xml(schema: FormSchema) -> str:
    """EDMX 4.0: the metadata complex type plus one entity type per table."""
    ns = f"org.opendatakit.user.{schema.form_id}"
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">',
           "  <edmx:DataServices>",
           '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="org.opendatakit.submission">',
           '      <ComplexType Name="metadata">',
           *[f'        <Property Name="{n}" Type="{t}"/>' for n, t in (
               ("submissionDate", "Edm.DateTimeOffset"), ("updatedAt", "Edm.DateTimeOffset"),
               ("deletedAt", "Edm.DateTimeOffset"), ("submitterId", "Edm.String"),
               ("submitterName", "Edm.String"), ("attachmentsPresent", "Edm.Int64"),
               ("attachmentsExpected", "Edm.Int64"), ("status", "Edm.String"),
               ("reviewState", "Edm.String"), ("deviceId", "Edm.String"), ("edits", "Edm.Int64"),
               ("formVersion", "Edm.String"))],
           "      </ComplexType>",
           "    </Schema>",
           f'    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace={quoteattr(ns)}>']
    containers = []
    for table in tables(schema):
        etype = table.name.replace(".", "_")
        out.append(f'      <EntityType Name="{etype}">')
        out.append('        <Key><PropertyRef Name="__id"/></Key>')
        out.append('        <Property Name="__id" Type="Edm.String"/>')
        if table.repeat is None:
            out.append('        <Property Name="__system" Type="org.opendatakit.submission.metadata"/>')
        else:
            parent_key = "__" + (table.parent or "Submissions").replace(".", "-") + "-id"
            out.append(f'        <Property Name="{parent_key}" Type="Edm.String"/>')
        for path, ftype in field_types(schema, table.repeat).items():
            edm = EDM.get(ftype, "Edm.String")
            out.append(f'        <Property Name={quoteattr(path.replace("/", "_"))} Type="{edm}"/>')
        out.append("      </EntityType>")
        containers.append(f'        <EntitySet Name={quoteattr(table.name)} EntityType={quoteattr(ns + "." + etype)}/>')
    out.append(f'      <EntityContainer Name="{schema.form_id}">')
    out.extend(containers)
    out += ["      </EntityContainer>", "    </Schema>", "  </edmx:DataServices>", "</edmx:Edmx>"]
    return "\n".join(out) + "\n"


def stream_json(head: dict[str, Any], rows: Iterator[dict[str, Any]], tail: dict[str, Any]) -> Iterator[bytes]:
    """{"@odata.context":…, "value":[rows…], …tail} written row by row."""
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ',"value":[').encode()
    first = True
    for row in rows:
        yield (b"" if first else b",") + json.dumps(row, ensure_ascii=False, default=str).encode()
        first = False
    yield ("]" + ("," + json.dumps(tail, ensure_ascii=False)[1:] if tail else "}")).encode()


def fetch_page(session: Any, q: Any, page: int | None, skip: int, after: Any | None) -> tuple[list[Any], bool]:
    """One page of an ordered query: after the keyset condition (a skiptoken) or $skip rows, then
    up to `page` rows; also whether more rows follow."""
    if after is not None:
        q = q.where(after)
    elif skip:
        q = q.offset(skip)
    if page is not None:
        q = q.limit(page + 1)
    result = session.execute(q).all()
    more = page is not None and len(result) > page
    return (result[:page] if page is not None else result), more
