"""Central's GeoJSON of a form's submissions (`…/submissions.geojson`, Central 2025.2's map): one Feature
per submission, its `id` the instanceId, its geometry the default geo question (the form's first
geopoint, geotrace or geoshape outside any repeat; `properties.fieldpath` names it) or, with
`fieldpath=all` or several `fieldpath`s, a GeometryCollection of the asked questions (`properties`
null). Submissions without a value there are left out.

Scoped like every export: only the caller's regions' submissions; a question marked sensitive is left
out for a reader who may not see identifying details (a location can identify a child's home).
Geo questions inside repeats are not served (Central serves them as Multi* geometries).
"""
from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from sqlalchemy.orm import Session

from app import problems
from app.central import shapes as central
from app.central.odata import REVIEW_FROM_CENTRAL
from app.models import Form, Submission, User
from app.services import access
from app.services.schemas import schema_of
from forms import FormSchema

GEO_TYPES = ("geopoint", "geotrace", "geoshape")


def geo_fields(schema: FormSchema) -> list[tuple[str, str]]:
    """(Central's fieldpath, our data key) of each geo question outside repeats, in form order."""
    base = f"/{schema.root}/"
    return [(f.path[len(base) - 1:], f.path[len(base):]) for f in schema.fields
            if f.type in GEO_TYPES and f.repeat is None and f.path.startswith(base)]


def repeat_geo_paths(schema: FormSchema) -> set[str]:
    base = f"/{schema.root}/"
    return {f.path[len(base) - 1:] for f in schema.fields if f.type in GEO_TYPES and f.repeat is not None}


def chosen_fields(schema: FormSchema, wanted: list[str]) -> tuple[list[tuple[str, str]], bool]:
    """The fields asked for and whether the answer is a GeometryCollection (several fields or `all`)."""
    fields = geo_fields(schema)
    if not wanted:
        return fields[:1], False
    if wanted == ["all"]:
        return fields, True
    by_path = dict(fields)
    unknown = [w for w in wanted if w not in by_path]
    if unknown:
        inside = [w for w in unknown if w in repeat_geo_paths(schema)]
        if inside:
            raise problems.GEOJSON_FIELD_IN_REPEAT(path=inside[0][:80])
        raise problems.GEOJSON_NO_SUCH_FIELD(path=unknown[0][:80], known=", ".join(p for p, _ in fields) or "none")
    return [(w, by_path[w]) for w in dict.fromkeys(wanted)], len(wanted) > 1


def geometry(value: Any) -> dict[str, Any] | None:
    """A stored geo answer as a GeoJSON geometry (coordinates only), or None (empty, masked, unparsed)."""
    if isinstance(value, dict) and value.get("type") in ("Point", "LineString", "Polygon"):
        return {"type": value["type"], "coordinates": value.get("coordinates")}
    return None


def features(rows: Iterator[tuple[str, dict[str, Any]]], fields: list[tuple[str, str]],
             collection: bool) -> Iterator[dict[str, Any]]:
    """Features of (instanceId, values) rows; values already masked for the reader."""
    for instance_id, values in rows:
        shapes = [(path, g) for path, key in fields if (g := geometry(values.get(key))) is not None]
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
    result = session.execute(q.order_by(Submission.created_at.desc(), Submission.id.desc())
                             .execution_options(yield_per=500))
    try:
        rows = ((sub.instance_id, {} if sv.encrypted_file else red.values(schema, sv.data)) for sub, sv, *_ in result)
        found = list(islice(features(rows, fields, several), query["limit"]))
    finally:
        result.close()  # a limit may stop before the last row: the server-side cursor is closed here
    return {"type": "FeatureCollection", "features": found}, red
