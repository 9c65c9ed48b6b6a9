"""Generated SQL views for analysts: one per form and one per repeat, one typed column per question.

    SELECT * FROM form_assessment WHERE county = '540102';

Names: `form_<form_id>` (lower case, other characters as `_`) and `form_<form_id>__<repeat>`. Two
form ids that normalise alike (`Child-Registration`, `child_registration`) cannot share a view: the
first form keeps the name, the other gets `_2` (then `_3`, …), and a name never changes once given
(table `form_view` lists every view with its form and repeat).

Views are rebuilt when a form version is published; they read the JSON values stored at ingest,
so publishing a new version never needs DDL on the data tables. Numbers that did not parse at
ingest (kept as text) come out as NULL in numeric columns rather than breaking the view.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from app.models import Base, Form, FormVersion, FormView
from app.services.schemas import schema_of

NUMERIC = {"int": "integer", "decimal": "decimal"}
# PostgreSQL allows 1,664 columns in a view: questions past this many columns are left out of the
# view (their answers are still in the stored JSON values, exports and OData).
MAX_COLUMNS = 1_600
SKIP_TYPES = {"group", "repeat"}


@dataclass(frozen=True)
class Column:
    name: str  # SQL column name
    key: str  # JSON key in the stored values
    kind: str  # text | integer | decimal | geopoint | select_multiple


def ident(name: str) -> str:
    """A safe lower-case SQL identifier."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "x"
    return cleaned[:60]


def view_name(xml_form_id: str, repeat: str | None = None) -> str:
    """The preferred name: `form_<form_id>` or `form_<form_id>__<repeat>`, lower case, at most 63
    characters (PostgreSQL's identifier limit). `assign_view_names` decides the name actually used."""
    base = f"form_{ident(xml_form_id)}"
    name = base if repeat is None else f"{base}__{ident(repeat.rsplit('/', 1)[-1])}"
    return name[:MAX_NAME]


MAX_NAME = 63


def _candidates(xml_form_id: str, repeat: str | None) -> Iterator[str]:
    """Names to try, best first: the preferred one; for a repeat whose last name another repeat
    shares (`items` and `Items`), its whole path; then `_2`, `_3`, … on the first."""
    first = view_name(xml_form_id, repeat)
    yield first
    if repeat is not None:
        inner = repeat.strip("/").split("/", 1)[-1]
        yield f"form_{ident(xml_form_id)}__{ident(inner.replace('/', '_'))}"[:MAX_NAME]
    n = 2
    while True:
        suffix = f"_{n}"
        yield first[:MAX_NAME - len(suffix)] + suffix
        n += 1


def assign_view_names(session: Session, form: Form, tables: list[str | None]) -> dict[str | None, str]:
    """The view name of each table (None = main) of the form. A name, once given to a form, stays
    with it (table form_view); a new one is never a name another form owns, a table, or a view
    CareFile did not make, so publishing never replaces anything but this form's own views."""
    owned = {v.repeat: v.name for v in session.scalars(select(FormView).where(FormView.form_id == form.id))}
    out: dict[str | None, str] = {}
    missing = [t for t in tables if t not in owned]
    if missing:
        registered = set(session.scalars(select(FormView.name)))
        insp = inspect(session.connection())
        existing = {n.lower() for n in [*insp.get_table_names(), *insp.get_view_names()]}
        taken = registered | existing | set(Base.metadata.tables)
        for table in missing:
            name = next(c for c in _candidates(form.xml_form_id, table) if c not in taken)
            taken.add(name)
            session.add(FormView(name=name, form_id=form.id, repeat=table))
            owned[table] = name
        session.flush()
    for table in tables:
        out[table] = owned[table]
    return out


def _columns(session: Session, form_id: int) -> dict[str | None, list[Column]]:
    """Columns per table (None = main) over every published version, newest definition wins."""
    tables: dict[str | None, dict[str, Column]] = {}
    versions = session.scalars(select(FormVersion).where(FormVersion.form_id == form_id).order_by(FormVersion.id))
    for fv in versions:
        schema = schema_of(fv)
        prefix = f"/{schema.root}/"
        for f in schema.fields:
            if f.type in SKIP_TYPES:
                continue
            base = f.repeat + "/" if f.repeat else prefix
            if not f.path.startswith(base):
                continue
            key = f.path[len(base):]
            kind = {"geopoint": "geopoint", "select": "select_multiple"}.get(f.type) or NUMERIC.get(f.type, "text")
            tables.setdefault(f.repeat, {})[key] = Column(ident(key.replace("/", "_")), key, kind)
        for rep in schema.repeats:
            tables.setdefault(rep, {})
    out: dict[str | None, list[Column]] = {}
    for table, cols in tables.items():
        seen: set[str] = set()
        unique = []
        for col in cols.values():
            name = col.name
            n = 2
            while name in seen or name in RESERVED:
                name = f"{col.name}_{n}"
                n += 1
            seen.add(name)
            unique.append(Column(name, col.key, col.kind))
        out[table] = unique
    return out


RESERVED = {"submission_id", "instance_id", "form_version", "received_at", "submitter_id", "region_code",
            "review_state", "row_id", "parent_row_id", "ordinal", "instance_name"}


def _expr(dialect: str, src: str, col: Column) -> list[str]:
    key = col.key.replace("'", "''")
    if dialect == "postgresql":
        raw = f"{src}.data -> '{key}'"
        txt = f"{src}.data ->> '{key}'"
        if col.kind in ("integer", "decimal"):
            cast = "bigint" if col.kind == "integer" else "double precision"
            return [f"CASE WHEN jsonb_typeof({raw}) = 'number' THEN ({txt})::{cast} END AS \"{col.name}\""]
        if col.kind == "geopoint":
            return [f"({raw} -> 'coordinates' ->> {i})::double precision AS \"{col.name}_{n}\""
                    for i, n in ((1, "latitude"), (0, "longitude"), (2, "altitude"))] + [
                f"({raw} -> 'properties' ->> 'accuracy')::double precision AS \"{col.name}_accuracy\""]
        if col.kind == "select_multiple":
            # Stored as a JSON list; shown space-separated as in the XML (and ODK's CSV export).
            return [f"CASE WHEN jsonb_typeof({raw}) = 'array' THEN (SELECT string_agg(e.value, ' ' ORDER BY "
                    f"e.ordinality) FROM jsonb_array_elements_text({raw}) WITH ORDINALITY AS e(value, ordinality)) "
                    f"ELSE {txt} END AS \"{col.name}\""]
        return [f"CASE WHEN jsonb_typeof({raw}) IN ('object', 'array') THEN ({raw})::text ELSE {txt} END "
                f"AS \"{col.name}\""]
    path = '$."' + key.replace('"', '\\"') + '"'
    if col.kind in ("integer", "decimal"):
        cast = "INTEGER" if col.kind == "integer" else "REAL"
        return [f"CASE WHEN json_type({src}.data, '{path}') IN ('integer', 'real') "
                f"THEN CAST(json_extract({src}.data, '{path}') AS {cast}) END AS \"{col.name}\""]
    if col.kind == "geopoint":
        return [f"json_extract({src}.data, '{path}.coordinates[{i}]') AS \"{col.name}_{n}\""
                for i, n in ((1, "latitude"), (0, "longitude"), (2, "altitude"))] + [
            f"json_extract({src}.data, '{path}.properties.accuracy') AS \"{col.name}_accuracy\""]
    if col.kind == "select_multiple":
        return [f"CASE WHEN json_type({src}.data, '{path}') = 'array' THEN (SELECT group_concat(j.value, ' ') "
                f"FROM (SELECT value FROM json_each({src}.data, '{path}') ORDER BY key) AS j) "
                f"ELSE json_extract({src}.data, '{path}') END AS \"{col.name}\""]
    return [f"json_extract({src}.data, '{path}') AS \"{col.name}\""]


def refresh_views(session: Session, form_id: int) -> list[str]:
    """(Re)create the views of one form; returns their names."""
    form = session.get(Form, form_id)
    assert form is not None
    dialect = session.get_bind().dialect.name
    names: list[str] = []
    columns = _columns(session, form_id)
    assigned = assign_view_names(session, form, list(columns))
    for table, cols in columns.items():
        name = assigned[table]
        if table is None:
            select_cols = [
                "s.id AS submission_id", "s.instance_id AS instance_id", "fv.version AS form_version",
                "s.created_at AS received_at", "s.submitter_id AS submitter_id", "s.region_code AS region_code",
                "s.review_state AS review_state", "sv.instance_name AS instance_name",
            ] + [e for c in cols for e in _expr(dialect, "sv", c)][:MAX_COLUMNS]
            body = (f"SELECT {', '.join(select_cols)} FROM submission s "
                    "JOIN submission_version sv ON sv.id = s.current_version_id "
                    "JOIN form_version fv ON fv.id = sv.form_version_id "
                    f"WHERE s.form_id = {int(form_id)} AND s.deleted_at IS NULL")
        else:
            rep = table.replace("'", "''")
            select_cols = [
                "r.id AS row_id", "s.id AS submission_id", "r.parent_id AS parent_row_id", "r.ordinal AS ordinal",
            ] + [e for c in cols for e in _expr(dialect, "r", c)][:MAX_COLUMNS]
            body = (f"SELECT {', '.join(select_cols)} FROM submission_repeat_row r "
                    "JOIN submission s ON s.current_version_id = r.version_id "
                    f"WHERE s.form_id = {int(form_id)} AND s.deleted_at IS NULL AND r.repeat = '{rep}'")
        session.execute(text(f'DROP VIEW IF EXISTS "{name}"'))
        session.execute(text(f'CREATE VIEW "{name}" AS {body}'))
        names.append(name)
    return names
