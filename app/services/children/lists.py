"""Entity lists as phones receive them: the CSV (scoped to the user's regions) and the integrity check.

The CSV of a list is built once per (database, list, revision, properties, scope) and kept in a small
cache in each process; the list's revision (store.list_revision, read on every request) changes with
every change of the list, so a change on any node is served at once by every node.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import String, Text, literal, or_, select, type_coerce
from sqlalchemy.orm import Session

from app import problems
from app.models import Dataset, Entity, PurgedEntity, User
from app.services import access
from app.services.children.store import get_dataset, list_revision
from app.services.metrics import ENTITY_LIST_BUILDS
from app.services.regions import covers
from app.services.spreadsheets import CsvWriter
from forms import normalize_uuid


def _scope(user: User) -> tuple[str, ...] | None:
    """Region codes limiting what the user's phone receives; None = everything (the access policy)."""
    return access.phone_scope(user)


_CSV_CACHE: OrderedDict[tuple[Any, ...], tuple[bytes, str]] = OrderedDict()
_CSV_CACHE_SIZE = 64


def list_csv(session: Session, project_id: int, dataset: str, user: User,
             reader: access.Redactor | None = None) -> tuple[bytes, str]:
    """The entity list as this user's phone receives it, and its md5 (the manifest hash).

    `reader`: the list is read on a web page (the browser's form renderer), not by a phone: a reader not
    entitled to identifying details gets pseudonyms for labels built from sensitive data and sensitive
    properties masked, as on every other page. Phones keep the de-identified labels the forms build."""
    ds = get_dataset(session, project_id, dataset)
    if ds is None:
        raise problems.NO_ENTITY_LIST(dataset=dataset)
    body, md5 = _cached_csv(session, ds, _scope(user))
    if reader is None or reader.show:
        return body, md5
    return _redacted(body, dataset, reader)


def _redacted(body: bytes, dataset: str, reader: access.Redactor) -> tuple[bytes, str]:
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    if not rows:
        return body, hashlib.md5(body).hexdigest()
    header, out = rows[0], io.StringIO()
    writer = CsvWriter(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows[1:]:
        values = dict(zip(header, row, strict=True))
        values["label"] = reader.child_label(dataset, values["name"], values["label"])
        values.update(reader.entity_properties(dataset, {k: v for k, v in values.items()
                                                         if k not in ("name", "label") and not k.startswith("__")}))
        writer.writerow([values[h] for h in header])
    data = out.getvalue().encode("utf-8")
    return data, hashlib.md5(data).hexdigest()


def _cached_csv(session: Session, ds: Dataset, scope: tuple[str, ...] | None) -> tuple[bytes, str]:
    bind = session.get_bind()
    key = (str(bind.engine.url), ds.id, list_revision(session, ds), tuple(ds.properties or []), scope)
    hit = _CSV_CACHE.get(key)
    if hit is not None:
        _CSV_CACHE.move_to_end(key)
        return hit
    started = time.perf_counter()
    body = build_csv(session, ds, scope)
    ENTITY_LIST_BUILDS.observe(time.perf_counter() - started)
    result = (body, hashlib.md5(body).hexdigest())
    _CSV_CACHE[key] = result
    while len(_CSV_CACHE) > _CSV_CACHE_SIZE:
        _CSV_CACHE.popitem(last=False)
    return result


def build_csv(session: Session, ds: Dataset, scope: tuple[str, ...] | None) -> bytes:
    """Render the CSV (bench/entities: 25,000 children must build in well under 300 ms).

    Core (not ORM) rows from the session's connection. PostgreSQL extracts the properties
    server-side (`data ->> 'prop'`, text, NULL for a missing key), so no JSON reaches Python;
    SQLite returns the JSON text, decoded here with one json.loads per row (json_extract per
    property is slower there). Property values are stored as strings (_props), so both paths
    give the same bytes.
    """
    props = list(ds.properties or [])
    t = Entity.__table__
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"
    data_cols: list[Any]
    if postgres:
        data_cols = [t.c.data.op("->>")(literal(p, String)) for p in props]
    else:
        data_cols = [type_coerce(t.c.data, Text)]
    q = select(t.c.uuid, t.c.label, t.c.version, *data_cols).where(
        t.c.dataset_id == ds.id, t.c.deleted_at.is_(None), t.c.closed_at.is_(None)).order_by(t.c.id)
    if scope is not None:
        if not scope:
            q = q.where(t.c.id.is_(None))
        else:
            q = q.where(or_(*[t.c.region_code.startswith(code, autoescape=True) for code in scope]))
    out = io.StringIO()
    writer = CsvWriter(out, lineterminator="\n")
    writer.writerow(["name", "label", "__version", "__trunkVersion", "__branchId", *props])
    rows = conn.execute(q)
    if postgres:
        writer.writerows((uid, label, version, version, "", *values) for uid, label, version, *values in rows)
    else:
        loads = json.loads
        writer.writerows((uid, label, version, version, "", *[data.get(p, "") for p in props])
                         for uid, label, version, raw in rows for data in (loads(raw) if raw else {},))
    return out.getvalue().encode("utf-8")


def integrity(session: Session, project_id: int, dataset: str, user: User, ids: list[str]) -> list[tuple[str, bool]]:
    """Deleted state of the given entity ids as this user sees them (Collect's integrity check of entities
    created offline; docs/architecture.md, "Entities")."""
    ds = get_dataset(session, project_id, dataset)
    if ds is None:
        raise problems.NO_ENTITY_LIST(dataset=dataset)
    scope = _scope(user)
    wanted = [u for u in (normalize_uuid(i) for i in ids) if u]
    q = select(Entity.uuid, Entity.deleted_at, Entity.region_code, Entity.closed_at).where(Entity.dataset_id == ds.id)
    if wanted:
        q = q.where(Entity.uuid.in_(wanted))
    elif scope is not None:
        # Without ids: only the entities this user's phone may know about (never other regions' ids).
        if not scope:
            return []
        q = q.where(or_(*[Entity.region_code.startswith(code, autoescape=True) for code in scope]))
    out = []
    for uid, deleted_at, region, closed_at in session.execute(q):
        visible = scope is None or covers(list(scope), region)
        # Merged (deleted) and closed children leave phones: reported as deleted.
        out.append((uid, deleted_at is not None or closed_at is not None or not visible))
    if wanted:  # purged entities (app/services/children/trash.py) stay deleted for the phones that ask
        known = {uid for uid, _ in out}
        out += [(uid, True) for uid in session.scalars(select(PurgedEntity.uuid).where(
            PurgedEntity.dataset_id == ds.id, PurgedEntity.uuid.in_(wanted))) if uid not in known]
    return out
