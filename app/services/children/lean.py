"""The common entity change of a new record — a registration creating a child, a visit updating one on top of its
current version — written on a driver connection with statements compiled once (app/prepared.py), without a
Session: the ORM's unit of work, savepoints and flushes cost three times the submission's own rows
(docs/benchmarks.md, *Ingest*).

Only the plain cases are taken; everything else returns None from `prepare` before anything is written and the
caller (app.services.submissions.ingest) takes the full path of app/services/children/entities.py — which is also
the reference: the rows written here are the rows it writes (tests/app/submissions/test_lean_entities.py
compares them case by case). What makes a case plain, all decided under the list's lock:
- one top-level entity block (no entities from a repeat), a create or an update (not both), by a form that
  declares that action; a valid entity id, a label for a create;
- the list exists; the change lies inside the submitter's regions (nothing to hold for review);
- a create: the id is not taken, not purged, and no held offline update waits for it;
- an update: the entity exists, is not deleted or merged, the update names a base version that is the current
  one (no conflict to work out) and is online or the first step of an offline branch; no trunk version newer
  than the entity's;
- no held update of the same offline branch waits to be drained; the periodic look for old held updates is
  not due (app.services.children.entities);
- every after-effect that would act has a lean variant that accepts the event (app.services.events.lean_plan):
  a form closing or reopening a case, or a likely duplicate, take the full path.
Locks (app/services/children/store.py, the lock order):
- PostgreSQL: the list's advisory lock, shared — every other change of the list holds it exclusively, so none
  runs beside a plain change, while plain changes run beside each other — and, exclusively and in a fixed order,
  advisory locks on the names that two plain changes must not decide on at once: the entity's id (two changes of
  one child, or a registration racing an update of the child it creates, take turns: the second one's checks see
  the first) and for a registration the names of its duplicate check (duplicates.check_keys). The checks then
  run in the next statement, on a snapshot taken after the locks. The list's revision is counted on one of
  SLOTS rows of dataset_revision, in the statement that writes the change, so the commits of plain changes do
  not queue on one row (docs/benchmarks.md, *Ingest, seventh round*: that queue held registrations and visits
  about a tenth further below a plain record's rate under load; their CPU barely changed).
- SQLite: the list's row (an UPDATE of its revision); the writer holds the database anyway.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Integer, Table, TextClause, and_, bindparam, exists, func, literal, select, text

from app.models import (
    Dataset,
    DatasetRevision,
    Entity,
    EntityEvent,
    EntityVersion,
    PurgedEntity,
    SubmissionVersion,
    User,
    utcnow,
)
from app.prepared import Prepared
from app.services import access, events
from app.services.children import duplicates, entities
from app.services.children.store import KEY_LOCK, LIST_KEY_SQL, LIST_LOCK
from app.services.regions import of_properties as region_of
from forms import EntityBlock, FormSchema, SubmissionData, normalize_uuid

_E, _V, _EV, _DS = Entity.__table__, EntityVersion.__table__, EntityEvent.__table__, Dataset.__table__
_DR = DatasetRevision.__table__

# SQLite: the list's lock and its revision (the phones' CSV cache key) in one statement: an UPDATE locks the row
# as SELECT … FOR UPDATE does; when the change turns out not to be plain, the transaction is rolled back and the
# revision with it.
_LOCK = Prepared(_DS.update().where(_DS.c.project_id == bindparam("project_id"), _DS.c.name == bindparam("name"))
                 .values(revision=func.coalesce(_DS.c.revision, literal(0)) + 1).returning(_DS.c.id, _DS.c.name))
SLOTS = 8  # PostgreSQL: the rows of dataset_revision a list's plain changes count on


def _pg_lock(keys: int) -> Prepared:
    """PostgreSQL: the list's advisory lock, shared, then `keys` names exclusively (parameters k0 … in the order
    given: ascending, the same order in every transaction), then the list's id and name. The locks are taken as
    the columns are computed, left to right."""
    found = _PG_LOCKS.get(keys)
    if found is None:
        locks = [f"pg_advisory_xact_lock_shared({LIST_LOCK}, {LIST_KEY_SQL})"]
        locks += [f"pg_advisory_xact_lock({KEY_LOCK}, CAST(:k{i} AS INTEGER))" for i in range(keys)]
        statement = text(f"SELECT {', '.join(locks)}, dataset.id, dataset.name FROM dataset WHERE "
                         "dataset.project_id = CAST(:project_id AS INTEGER) AND dataset.name = CAST(:name AS TEXT)")
        found = _PG_LOCKS[keys] = Prepared(statement.bindparams(
            bindparam("project_id", type_=Integer()), *(bindparam(f"k{i}", type_=Integer()) for i in range(keys))))
    return found


_PG_LOCKS: dict[int, Prepared] = {}


def key_number(project_id: int, dataset: str, key: str) -> int:
    """The advisory lock's number for a name within a list (a signed 32-bit CRC: two names that share a number
    only take turns needlessly)."""
    n = zlib.crc32(f"{project_id}/{dataset}/{key}".encode())
    return n - (1 << 32) if n >= 1 << 31 else n


_BRANCH_WAITING = exists().where(EntityEvent.status == "backlog", EntityEvent.branch_id == bindparam("branch"))
_NEW_ID_FREE = select(
    exists().where(Entity.dataset_id == bindparam("ds"), Entity.uuid == bindparam("uid")),
    exists().where(EntityEvent.status == "backlog", EntityEvent.entity_uuid == bindparam("uid")),
    exists().where(PurgedEntity.dataset_id == bindparam("ds"), PurgedEntity.uuid == bindparam("uid")),
    _BRANCH_WAITING)
_TARGET = (select(Entity.id, Entity.version, Entity.region_code, Entity.deleted_at, Entity.merged_into,
                  Entity.closed_at, Entity.conflict, EntityVersion.label, EntityVersion.data, _BRANCH_WAITING)
           .select_from(Entity)
           .outerjoin(EntityVersion, and_(EntityVersion.entity_id == Entity.id,
                                          EntityVersion.version == Entity.version))
           .where(Entity.dataset_id == bindparam("ds"), Entity.uuid == bindparam("uid")))
# PostgreSQL: the same statement draws the ids of the record, its version, a new entity, its version and the event,
# so that no row is read back and all go to the server in one statement (Rows.flush); SQLite gives them as the rows
# go in.
_CREATE_IDS = ("submission", "submission_version", "entity", "entity_version", "entity_event")
_UPDATE_IDS = ("submission", "submission_version", "entity_version", "entity_event")


def _drawing(tables: tuple[str, ...]) -> list[Any]:
    return [func.nextval(func.pg_get_serial_sequence(table, "id")) for table in tables]


_CREATE_FACTS = {"sqlite": Prepared(_NEW_ID_FREE),
                 "postgresql": Prepared(_NEW_ID_FREE.add_columns(*_drawing(_CREATE_IDS)))}
_UPDATE_FACTS = {"sqlite": Prepared(_TARGET), "postgresql": Prepared(_TARGET.add_columns(*_drawing(_UPDATE_IDS)))}
_UPDATE_ENTITY = Prepared(_E.update().where(_E.c.id == bindparam("id")).values(
    version=bindparam("version"), label=bindparam("label"), data=bindparam("data"),
    region_code=bindparam("region_code"), updated_at=bindparam("updated_at")))


_INSERTS: dict[tuple[str, tuple[str, ...]], Prepared] = {}


class Rows:
    """Where a lean change's writes go. SQLite: each runs at once (statements compiled once per table and columns).
    PostgreSQL: they are collected and written together by `flush`, in one statement."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.postgresql = conn.dialect.name == "postgresql"
        self.writes: list[tuple[str, Table, dict[str, Any]]] = []

    def insert(self, table: Table, values: dict[str, Any]) -> int | None:
        """A row (SQLite: written now, its id returned; PostgreSQL: None)."""
        if self.postgresql:
            self.writes.append(("insert", table, values))
            return None
        key = (table.name, tuple(values))
        statement = _INSERTS.get(key)
        if statement is None:
            statement = _INSERTS[key] = Prepared(table.insert(), list(values))
        cursor = statement.run(self.conn, values)
        cursor.close()
        return cursor.lastrowid

    def update_entity(self, values: dict[str, Any]) -> None:
        """The entity's new version: the columns given, of the row named by "id"."""
        if self.postgresql:
            self.writes.append(("entity", _E, values))
        else:
            _UPDATE_ENTITY.run(self.conn, values).close()

    def count_revision(self, dataset_id: int) -> None:
        """PostgreSQL: count the change on one of the list's SLOTS revision counters, chosen at random (SQLite:
        the lock counted it)."""
        if self.postgresql:
            self.writes.append(("revision", _DR, {"dataset_id": dataset_id, "slot": random.randrange(SLOTS)}))

    def flush(self, record: tuple[tuple[list[str], list[Any]], dict[str, Any]] | None = None) -> None:
        """PostgreSQL: write what was collected — after the record's own CTEs and their parameters when `record`
        is given — in one statement, built once per shape (which rows, which columns): data-modifying CTEs, each
        row one JSON parameter made the table's row by the server (jsonb_populate_record), so that the statement
        stays short and its parameters few (psycopg keeps the parsed form of such statements only). Foreign keys
        between the rows are checked at the statement's end."""
        if not self.writes and record is None:
            return
        shape = (record is not None, tuple((kind, table, tuple(values)) for kind, table, values in self.writes))
        statement = _PG_WRITES.get(shape)
        if statement is None:
            statement = _PG_WRITES[shape] = Prepared(_pg_writes(shape[1], record[0] if record else None))
        params: dict[str, Any] = dict(record[1]) if record else {}
        for i, (kind, _table, values) in enumerate(self.writes):
            params[f"x{i}"] = orjson.dumps(values).decode()
            if kind == "entity":
                params[f"x{i}_id"] = values["id"]
        self.writes = []
        statement.run(self.conn, params).close()


_PG_WRITES: dict[tuple[Any, ...], Prepared] = {}


def _pg_writes(shape: tuple[tuple[str, Table, tuple[str, ...]], ...],
               first: tuple[list[str], list[Any]] | None) -> TextClause:
    ctes, params = (list(first[0]), list(first[1])) if first else ([], [])
    for i, (kind, t, columns) in enumerate(shape):
        table = t.name
        params.append(bindparam(f"x{i}"))
        if kind == "entity":
            params.append(bindparam(f"x{i}_id", type_=Integer()))
        row = f"jsonb_populate_record(NULL::{table}, CAST(:x{i} AS JSONB))"
        if kind == "insert" and set(columns) == {c.name for c in t.columns}:
            ctes.append(f"x{i} AS (INSERT INTO {table} SELECT * FROM {row})")  # every column given: the row itself
        elif kind == "insert":
            names = ", ".join(f'"{c}"' for c in columns)
            ctes.append(f"x{i} AS (INSERT INTO {table} ({names}) SELECT {names} FROM {row})")
        elif kind == "revision":  # the list's revision: one of its counters, made when missing
            ctes.append(f"x{i} AS (INSERT INTO {table} (dataset_id, slot, n) SELECT dataset_id, slot, 1 FROM {row} "
                        f"ON CONFLICT (dataset_id, slot) DO UPDATE SET n = {table}.n + 1)")
        else:  # "entity": the entity's new version: the columns given, but the id, which names the row
            names = ", ".join(f'"{c}"' for c in columns if c != "id")
            ctes.append(f"x{i} AS (UPDATE entity SET ({names}) = (SELECT {names} FROM {row}) "
                        f"WHERE id = CAST(:x{i}_id AS INTEGER))")
    return text("WITH " + ", ".join(ctes) + " SELECT 1").bindparams(*params)


@dataclass
class Change:
    """A plain entity change, decided and not yet written (`prepare`); `write` writes it."""

    dataset_id: int
    dataset: str
    uid: str
    block: EntityBlock
    received: dict[str, Any]
    entity: Entity  # transient: the entity as it will be (its id set by `write` for a create)
    version: SubmissionVersion  # transient: the record's version (ids set by `write`)
    base_version: int | None
    writers: list[events.Writer]
    drawn: dict[str, int]  # PostgreSQL: the ids drawn for the rows, by table (SQLite: none)

    def write(self, rows: Rows, submission_id: int, version_id: int) -> None:
        """The entity's rows, the after-effects' rows, the list's revision and the entity event — SQLite: written
        now (the revision was counted with the list's lock, `prepare`); PostgreSQL: collected in `rows`."""
        now = utcnow()
        self.version.id, self.version.submission_id = version_id, submission_id
        e, block = self.entity, self.block
        created = self.base_version is None
        if created:
            new_id = rows.insert(_E, {
                "id": e.id, "dataset_id": self.dataset_id, "uuid": e.uuid, "label": e.label, "version": 1,
                "data": e.data, "region_code": e.region_code, "conflict": None, "created_at": now, "updated_at": now,
                "deleted_at": None, "merged_into": None, "closed_at": None, "close_reason": None,
                "anonymised_at": None})
            if e.id is None:  # SQLite: the row is in, its id given
                e.id = new_id
        else:
            rows.update_entity({"id": e.id, "version": e.version, "label": e.label, "data": e.data,
                                "region_code": e.region_code, "updated_at": now})
        branch = block.branch_id if created or block.trunk_version is not None else None
        rows.insert(_V, {
            "id": self.drawn.get("entity_version"), "entity_id": e.id, "version": e.version, "label": e.label,
            "data": e.data, "data_received": self.received, "submission_id": submission_id,
            "submission_version_id": version_id, "user_id": None, "base_version": self.base_version,
            "trunk_version": block.trunk_version, "branch_id": branch,
            "branch_base_version": self.base_version if branch and not created else None, "conflict": None,
            "conflicting_properties": None, "created_at": now, "action": None, "actor_id": None, "note": None})
        for writer in self.writers:
            writer(rows)
        rows.count_revision(self.dataset_id)
        rows.insert(_EV, {
            "id": self.drawn.get("entity_event"), "submission_version_id": version_id, "dataset": self.dataset,
            "entity_uuid": self.uid, "status": "applied", "code": None, "message": "", "branch_id": None,
            "created_at": now})


def eligible(schema: FormSchema, block: EntityBlock | None) -> bool:
    """Whether the record's entity change can be plain at all (before reading anything)."""
    return (block is not None and schema.entity is not None and not any(d.repeat for d in schema.entities)
            and bool(block.create) != bool(block.update))


def prepare(conn: Any, database: str, project_id: int, user: User | None, schema: FormSchema, block: EntityBlock,
            data: SubmissionData) -> Change | None:
    """The change, when it is plain (the module's docstring), with the list locked; None: take the full path.
    Reads only. `database`: the engine's URL as str() gives it (the periodic look for old held updates)."""
    declared = schema.entity
    uid = normalize_uuid(block.entity_id)
    if declared is None or uid is None or (block.branch_id is not None and len(block.branch_id) > 36):
        return None
    if (block.update and not declared.update) or (block.create and not declared.create):
        return None
    received = {k: ("" if v is None else str(v)) for k, v in data.entity_properties.items() if k != "label"}
    new_region = region_of(received)
    if conn.dialect.name == "postgresql":
        names = [f"entity:{uid}"]
        if block.create:
            names += duplicates.check_keys(received, new_region, data.values)
        keys = sorted({key_number(project_id, block.dataset, n) for n in names})
        rows = _pg_lock(len(keys)).rows(conn, {"project_id": project_id, "name": block.dataset,
                                               **{f"k{i}": k for i, k in enumerate(keys)}})
        rows = [r[-2:] for r in rows]
    else:
        rows = _LOCK.rows(conn, {"project_id": project_id, "name": block.dataset})
    if not rows:
        return None
    ds_id, ds_name = rows[0]
    branch = block.branch_id or ""
    if block.create:
        label = (block.label or "").strip()
        if not label:
            return None
        facts = _CREATE_FACTS[conn.dialect.name].rows(conn, {"ds": ds_id, "uid": uid, "branch": branch})[0]
        taken, waiting, purged, branch_waiting = facts[:4]
        drawn = dict(zip(_CREATE_IDS, facts[4:], strict=False))
        if taken or waiting or purged or (block.branch_id and branch_waiting):
            return None
        regions = [new_region]
        entity = Entity(id=drawn.get("entity"), dataset_id=ds_id, uuid=uid, label=label, version=1, data=dict(received),
                        region_code=new_region, closed_at=None)
        base_version = None
    else:
        found = _UPDATE_FACTS[conn.dialect.name].rows(conn, {"ds": ds_id, "uid": uid, "branch": branch})
        if not found:
            return None
        (entity_id, version, region, deleted_at, merged_into, closed_at, conflict, current_label, current_data,
         branch_waiting) = found[0][:10]
        drawn = dict(zip(_UPDATE_IDS, found[0][10:], strict=False))
        base_version = block.base_version
        offline_later = block.branch_id is not None and block.trunk_version is not None \
            and base_version != block.trunk_version
        if (deleted_at is not None or merged_into or current_data is None or base_version != version
                or offline_later or (block.trunk_version is not None and block.trunk_version > version)
                or (block.branch_id and branch_waiting)):
            return None
        regions = [region] + ([new_region] if new_region and new_region != region else [])
        new_data = dict(current_data)
        new_data.update(received)
        entity = Entity(id=entity_id, dataset_id=ds_id, uuid=uid, label=(block.label or "").strip() or current_label,
                        version=version + 1, data=new_data, region_code=region_of(new_data) or region,
                        closed_at=closed_at, conflict=conflict)
    if user is not None and not all(access.may_write_region(user, r) for r in regions):
        return None  # held for review: the full path
    if entities.force_due(database, ds_id, mark=False):
        return None
    version_row = SubmissionVersion(data=data.values)
    event = events.ChildChanged(None, entity, version_row, created=base_version is None, answers=data.values,
                                dataset=ds_name)
    writers = events.lean_plan(event, conn)
    if writers is None:
        return None
    return Change(ds_id, block.dataset[:100], uid, block, received, entity, version_row, base_version, writers, drawn)


__all__ = ["Change", "eligible", "prepare"]
