"""Central's GeoJSON of a form's submissions (`…/submissions.geojson`, Central 2025.2's map): one Feature
per submission, its `id` the instanceId, its geometry the default geo question (the form's first
geopoint, geotrace or geoshape outside any repeat; `properties.fieldpath` names it) or, with
`fieldpath=all` or several `fieldpath`s, a GeometryCollection of the asked questions (`properties`
null). A geo question inside a repeat (asked by its path, or with `all`) gives one Multi* geometry of
its answers in every repeat row (MultiPoint, MultiLineString, MultiPolygon), as Central. Submissions
without a value there are left out.

Scoped like every export: only the caller's regions' submissions; a question marked sensitive is left
out for a reader who may not see identifying details (a location can identify a child's home).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.central import shapes as central
from app.central.odata import REVIEW_FROM_CENTRAL
from app.models import Form, Submission, SubmissionRepeatRow, User
from app.services import access
from app.services.schemas import schema_of
from forms import FormSchema

GEO_TYPES = ("geopoint", "geotrace", "geoshape")


@dataclass(frozen=True)
class GeoField:
    path: str  # Central's fieldpath: "/location", "/plural/input_geopoint_repeat"
    key: str  # the answer's key in its row: relative to the root, or to its repeat
    repeat: str | None  # the repeat's full path (/data/plural), None outside repeats


def all_geo_fields(schema: FormSchema) -> list[GeoField]:
    """Every geo question of the form, in form order."""
    root = f"/{schema.root}/"
    out = []
    for f in schema.fields:
        if f.type in GEO_TYPES and f.path.startswith(root):
            base = (f.repeat + "/") if f.repeat else root
            out.append(GeoField(f.path[len(root) - 1:], f.path[len(base):], f.repeat))
    return out


def geo_fields(schema: FormSchema) -> list[GeoField]:
    """The geo questions outside repeats (the default is the first of them)."""
    return [g for g in all_geo_fields(schema) if g.repeat is None]


def chosen_fields(schema: FormSchema, wanted: list[str]) -> tuple[list[GeoField], bool]:
    """The fields asked for and whether the answer is a GeometryCollection (several fields or `all`)."""
    every = all_geo_fields(schema)
    if not wanted:
        return geo_fields(schema)[:1], False
    if wanted == ["all"]:
        return every, True
    by_path = {g.path: g for g in every}
    unknown = [w for w in wanted if w not in by_path]
    if unknown:
        raise problems.GEOJSON_NO_SUCH_FIELD(path=unknown[0][:80], known=", ".join(by_path) or "none")
    return [by_path[w] for w in dict.fromkeys(wanted)], len(wanted) > 1


def geometry(value: Any) -> dict[str, Any] | None:
    """A stored geo answer as a GeoJSON geometry (coordinates only), or None (empty, masked, unparsed)."""
    if isinstance(value, dict) and value.get("type") in ("Point", "LineString", "Polygon"):
        return {"type": value["type"], "coordinates": value.get("coordinates")}
    return None


MULTI = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}


def _multi(shapes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A repeat's answers as one Multi* geometry (of the first answer's type), None without any."""
    if not shapes:
        return None
    kind = shapes[0]["type"]
    return {"type": MULTI[kind], "coordinates": [g["coordinates"] for g in shapes if g["type"] == kind]}


def features(rows: Iterator[tuple[str, dict[str, Any], dict[str, list[dict[str, Any]]]]],
             fields: list[GeoField], collection: bool) -> Iterator[dict[str, Any]]:
    """Features of (instanceId, values, repeat rows' values by repeat) rows; values already masked."""
    for instance_id, values, repeats in rows:
        shapes = []
        for f in fields:
            if f.repeat is None:
                g = geometry(values.get(f.key))
            else:
                g = _multi([s for r in repeats.get(f.repeat, []) if (s := geometry(r.get(f.key))) is not None])
            if g is not None:
                shapes.append((f.path, g))
        if not shapes:
            continue
        if collection:
            yield {"type": "Feature", "id": instance_id,
                   "geometry": {"type": "GeometryCollection", "geometries": [g for _, g in shapes]},
                   "properties": None}
        else:
            path, g = shapes[0]
            yield {"type": "Feature", "id": instance_id, "geometry": g, "properties": {"fieldpath": path}}


def submissions_query(user: User, form: Form, query: dict[str, Any]) -> Any:
    """The caller's submissions of the form (app.central.shapes.submissions_query: regions; not deleted,
    or with `deleted=true` those in the trash) with the map feed's filters (app.params.geojson_query)."""
    q = central.submissions_query(user, form, deleted=query["deleted"])
    if query["ids"]:
        q = q.where(Submission.instance_id.in_(query["ids"]))
    if query["submitters"]:
        q = q.where(Submission.submitter_id.in_(query["submitters"]))
    if query["states"]:
        bad = [s for s in query["states"] if s not in REVIEW_FROM_CENTRAL and s != "null"]
        if bad:
            raise problems.GEOJSON_REVIEW_STATE_UNKNOWN(state=bad[0], known=", ".join(REVIEW_FROM_CENTRAL))
        q = q.where(Submission.review_state.in_([REVIEW_FROM_CENTRAL.get(s, "received") for s in query["states"]]))
    tests = {"start__gt": Submission.created_at.__gt__, "start__gte": Submission.created_at.__ge__,
             "end__lt": Submission.created_at.__lt__, "end__lte": Submission.created_at.__le__}
    for name, at in query["ranges"]:
        q = q.where(tests[name](at))
    return q


def collection(session: Session, user: User, form: Form, query: dict[str, Any], q: Any
               ) -> tuple[dict[str, Any], access.Redactor]:
    """The FeatureCollection, newest first, `limit` features (not rows: a record without a location does
    not use up the limit), answers masked for the reader; and the Redactor (the caller audits unmasked reads)."""
    schema = schema_of(form.current_version)  # type: ignore[arg-type]
    fields, several = chosen_fields(schema, query["fieldpaths"])
    red = access.Redactor(session, user, form.project_id)
    repeats = sorted({f.repeat for f in fields if f.repeat is not None})
    result = session.execute(q.order_by(Submission.created_at.desc(), Submission.id.desc())
                             .execution_options(yield_per=BATCH))
    found: list[dict[str, Any]] = []
    try:
        for batch in result.partitions(BATCH):
            by_version = _repeat_rows(session, schema, red, [sv.id for _, sv, *_ in batch], repeats)
            rows = ((sub.instance_id, {} if sv.encrypted_file else red.values(schema, sv.data),
                     by_version.get(sv.id, {})) for sub, sv, *_ in batch)
            wanted = None if query["limit"] is None else query["limit"] - len(found)
            found += islice(features(rows, fields, several), wanted)
            if wanted is not None and len(found) >= query["limit"]:
                break
    finally:
        result.close()  # a limit may stop before the last row: the server-side cursor is closed here
    return {"type": "FeatureCollection", "features": found}, red


BATCH = 500


def _repeat_rows(session: Session, schema: FormSchema, red: access.Redactor, version_ids: list[int],
                 repeats: list[str]) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """The masked values of the asked repeats' rows, by submission version and repeat, in row order."""
    out: dict[int, dict[str, list[dict[str, Any]]]] = {}
    if not repeats or not version_ids:
        return out
    rows = session.execute(select(SubmissionRepeatRow.version_id, SubmissionRepeatRow.repeat, SubmissionRepeatRow.data)
                           .where(SubmissionRepeatRow.version_id.in_(version_ids),
                                  SubmissionRepeatRow.repeat.in_(repeats))
                           .order_by(SubmissionRepeatRow.id))
    for vid, repeat, data in rows:
        out.setdefault(vid, {}).setdefault(repeat, []).append(red.values(schema, data or {}, repeat))
    return out
