"""A new record's plain entity change is written on a driver connection (app/services/children/lean.py); every
other case takes the full path (app/services/children/entities.py). Both must leave the same rows: one script of
registrations and visits — plain ones, and each kind of case the lean path hands over — runs through the full
path alone, the tables are emptied, then it runs again with the lean path on; the two snapshots must be equal,
and the lean path must have taken exactly the plain steps."""
from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError

from app.models import (
    ChildDirectory,
    Dataset,
    DatasetRevision,
    DuplicateCandidate,
    Entity,
    EntityEvent,
    EntityVersion,
    HeldChange,
    Submission,
    SubmissionAttachment,
    SubmissionRepeatRow,
    SubmissionVersion,
)
from app.services.children import lean
from app.services.children.store import list_revision, lock_dataset
from app.services.submissions import ingest
from tests.app.children.casework_helpers import follow_xml, phone, post, reg_xml

A, B, C, D, E = (f"{n}0000000-0000-4000-8000-000000000000" for n in "abcde")
X, Y = "f1000000-0000-4000-8000-000000000000", "f2000000-0000-4000-8000-000000000000"
VILLAGE_A, VILLAGE_B = "540102002001", "540121100201"
ID = "54010220150314002X"


def offline_xml(instance: str, uid: str, base: int, trunk: int, branch: str, status: str) -> bytes:
    return (f'<data id="referral_followup" version="1"><child>{uid}</child><status>{status}</status>'
            f"<close_reason></close_reason><due></due><meta><instanceID>{instance}</instanceID>"
            f'<entity dataset="children" id="{uid}" update="1" baseVersion="{base}" trunkVersion="{trunk}" '
            f'branchId="{branch}"><label/></entity></meta></data>').encode()


# (instance, who, body, whether the lean path takes it)
SCRIPT: list[tuple[str, str, bytes, bool]] = [
    ("uuid:r1", "dolma", reg_xml("uuid:r1", A, "扎西", "2015-03-14", VILLAGE_A, ID), True),
    ("uuid:f1", "dolma", follow_xml("uuid:f1", A, 1, "watch", due="2030-01-01"), True),
    ("uuid:f2", "dolma", follow_xml("uuid:f2", A, 1, "refer"), False),  # based on version 1 of 2: a conflict
    ("uuid:r2", "pema", reg_xml("uuid:r2", B, "札西", "2015-03-14", VILLAGE_B, ID), False),  # a likely duplicate
    ("uuid:r3", "dolma", reg_xml("uuid:r3", C, "卓玛", "2016-01-01", VILLAGE_A), True),
    ("uuid:r4", "dolma", reg_xml("uuid:r4", C, "卓玛", "2016-01-01", VILLAGE_A), False),  # the id is taken
    ("uuid:r5", "dolma", reg_xml("uuid:r5", D, "次仁", "2014-05-01", VILLAGE_B), False),  # outside her regions
    ("uuid:f3", "dolma", follow_xml("uuid:f3", C, 1, "closed", close_reason="moved"), False),  # closes the case
    ("uuid:f4", "dolma", follow_xml("uuid:f4", C, 2, "watch"), False),  # a visit of a closed case
    ("uuid:o1", "dolma", offline_xml("uuid:o1", A, 3, 3, X, "watch"), True),  # an offline branch's first step
    ("uuid:o2", "dolma", offline_xml("uuid:o2", A, 4, 3, X, "refer"), False),  # … and its next step
    ("uuid:o3", "dolma", offline_xml("uuid:o3", A, 6, 5, Y, "urgent"), False),  # a step before its predecessor
    ("uuid:o4", "dolma", offline_xml("uuid:o4", A, 5, 5, Y, "refer"), False),  # the predecessor: drains o3
    ("uuid:f5", "dolma", follow_xml("uuid:f5", E, 1, "watch"), False),  # no such child
    ("uuid:r6", "tenzin", reg_xml("uuid:r6", E, "拉姆", "2017-07-07", "540102002002"), True),
    ("uuid:f6", "tenzin", follow_xml("uuid:f6", E, 1, "healthy", due="2031-02-03"), True),
]


def _snapshot(rt: Any) -> dict[str, Any]:
    """Every row the script's entity changes leave, named by uuids and instanceIDs instead of ids and times."""
    with rt.db.session() as s:
        iid = dict(s.execute(select(SubmissionVersion.id, SubmissionVersion.instance_id)).all())
        sub_iid = dict(s.execute(select(Submission.id, Submission.instance_id)).all())
        uid = dict(s.execute(select(Entity.id, Entity.uuid)).all())
        return {
            "entities": sorted((e.uuid, e.label, e.version, e.data, e.region_code, e.conflict,
                                e.closed_at is not None, e.close_reason, e.deleted_at, e.merged_into)
                               for e in s.scalars(select(Entity))),
            "versions": sorted((uid[v.entity_id], v.version, v.label, v.data, v.data_received,
                                sub_iid.get(v.submission_id), iid.get(v.submission_version_id), v.user_id,
                                v.base_version, v.trunk_version, v.branch_id, v.branch_base_version, v.conflict,
                                v.conflicting_properties, v.action) for v in s.scalars(select(EntityVersion))),
            "events": [(iid[e.submission_version_id], e.dataset, e.entity_uuid, e.status, e.code, e.message,
                        e.branch_id) for e in s.scalars(select(EntityEvent).order_by(EntityEvent.id))],
            "directory": sorted((uid[d.entity_id], d.full_name, d.guardian_name, d.id_number, d.search_text,
                                 sub_iid.get(d.submission_id)) for d in s.scalars(select(ChildDirectory))),
            "pairs": sorted((uid[p.entity_a_id], uid[p.entity_b_id], p.reasons, p.status)
                            for p in s.scalars(select(DuplicateCandidate))),
            "held": sorted((iid[h.version_id], h.kind, h.status, h.regions, h.reason)
                           for h in s.scalars(select(HeldChange))),
            "submissions": sorted((sub.instance_id, sub.region_code, sub.entity_uuid, sub.review_state)
                                  for sub in s.scalars(select(Submission))),
            "revision": list_revision(s, s.scalars(select(Dataset).where(Dataset.name == "children")).one()),
        }


def _empty(rt: Any, revision: int) -> None:
    with rt.db.write() as s:
        s.execute(update(Submission).values(current_version_id=None))
        for model in (DuplicateCandidate, ChildDirectory, HeldChange, EntityEvent, EntityVersion, Entity,
                      SubmissionAttachment, SubmissionRepeatRow, SubmissionVersion, Submission):
            s.execute(delete(model))
        s.execute(delete(DatasetRevision))
        ds = s.scalars(select(Dataset).where(Dataset.name == "children")).one()
        lock_dataset(s, ds.project_id, ds.name)  # PostgreSQL refuses a change of the list's row without it
        s.execute(update(Dataset).where(Dataset.name == "children").values(revision=revision))


def _run(setup: Any, rt: Any, monkeypatch: Any, lean_on: bool) -> tuple[dict[str, Any], set[str]]:
    monkeypatch.setattr(ingest, "LEAN_ENTITIES", lean_on)
    full: set[str] = set()
    real = ingest._write

    def spy(*args: Any, **kw: Any) -> Any:
        full.add(args[10])  # instance_id
        return real(*args, **kw)

    monkeypatch.setattr(ingest, "_write", spy)
    for _instance, who, body, _plain in SCRIPT:
        post(phone(setup, who), body)
    monkeypatch.setattr(ingest, "_write", real)
    return _snapshot(rt), full


def test_lean_path_writes_what_the_full_path_writes(setup: Any, rt: Any, monkeypatch: Any) -> None:
    ingest.entity_service._FORCE_CHECKED.clear()
    with rt.db.session() as s:
        start = list_revision(s, s.scalars(select(Dataset).where(Dataset.name == "children")).one())
    orm, orm_full = _run(setup, rt, monkeypatch, lean_on=False)
    assert orm_full == {instance for instance, *_ in SCRIPT}
    _empty(rt, start)
    # The look for old held updates is not due (it is taken by the full path when it is: checked below).
    lean_snapshot, full = _run(setup, rt, monkeypatch, lean_on=True)
    assert full == {instance for instance, _who, _body, plain in SCRIPT if not plain}
    assert lean_snapshot == orm
    # The script did what it says: a conflict, a duplicate pair, a held change, a closed case, a drained branch.
    events = {e[0]: e[3:6] for e in orm["events"]}
    assert events["uuid:f2"][0] == "applied" and events["uuid:r4"][0] == "error" and events["uuid:r5"][0] == "held"
    assert events["uuid:o3"][0] == "applied" and events["uuid:f5"][0] == "error"
    assert [p[2] for p in orm["pairs"]] == [["id_number"]]
    entities = {e[0]: e for e in orm["entities"]}
    assert entities[C][6] and entities[C][7] == "moved" and entities[C][3]["status"] == "closed"
    assert entities[A][2] == 7 and entities[A][5] == "hard"  # f2 changed the status f1 had changed
    assert entities[E][2:4] == (2, {"village": "540102002002", "status": "healthy", "next_followup_due": "2031-02-03",
                                    "birth_date": "2017-07-07"})
    assert len(orm["directory"]) == 4 and orm["revision"] == start + 13  # every change but the three refused


def test_old_held_updates_are_looked_for_by_the_full_path(setup: Any, rt: Any, monkeypatch: Any) -> None:
    """Once per FORCE_CHECK_EVERY seconds per process an entity change looks for held updates past their time:
    the lean path does not, so when the look is due the record takes the full path, which looks."""
    taken: list[bool] = []
    real = lean.prepare

    def spy(*args: Any, **kw: Any) -> Any:
        change = real(*args, **kw)
        taken.append(change is not None)
        return change

    monkeypatch.setattr(lean, "prepare", spy)
    ingest.entity_service._FORCE_CHECKED.clear()
    dolma = phone(setup, "dolma")
    post(dolma, reg_xml("uuid:r1", A, "扎西", "2015-03-14", VILLAGE_A))  # due: the full path, which looks
    post(dolma, reg_xml("uuid:r2", B, "卓玛", "2016-03-14", VILLAGE_A))  # not due for a while: lean
    ingest.entity_service._FORCE_CHECKED.clear()
    post(dolma, follow_xml("uuid:f1", B, 1, "watch"))
    assert taken == [False, True, False]


def test_a_failing_lean_write_takes_the_full_path(setup: Any, rt: Any, monkeypatch: Any, caplog: Any) -> None:
    """A bug in the lean writer must not lose the record nor leak its answers: the full path takes it."""
    ingest.entity_service._FORCE_CHECKED.clear()
    dolma = phone(setup, "dolma")
    post(dolma, reg_xml("uuid:r1", A, "扎西", "2015-03-14", VILLAGE_A))

    def broken(self: Any, conn: Any, *args: Any) -> None:
        raise ValueError(f"boom {self.entity.data}")

    monkeypatch.setattr(lean.Change, "write", broken)
    with caplog.at_level(logging.INFO):
        post(dolma, follow_xml("uuid:f1", A, 1, "self-harm risk"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "ValueError" in logged and "self-harm" not in logged and "boom" not in logged
    _assert_visited_once(rt, "self-harm risk")


@pytest.mark.parametrize("error", ["deadlock", "integrity", "data"])
def test_a_lost_race_in_the_lean_path_runs_the_record_again(setup: Any, rt: Any, monkeypatch: Any,
                                                            error: str) -> None:
    """A deadlock is retried (the lean path again); a unique violation is taken as a twin's race: the next attempt
    looks for the twin and takes the full path; a value the database refuses sends the record down the full path,
    which records entity errors as events (never a 5xx). Either way the first attempt leaves nothing behind."""
    from sqlalchemy.exc import DataError, IntegrityError

    from tests.app.children.test_concurrency_entities import PgError

    ingest.entity_service._FORCE_CHECKED.clear()
    dolma = phone(setup, "dolma")
    post(dolma, reg_xml("uuid:r1", A, "扎西", "2015-03-14", VILLAGE_A))
    real = lean.Change.write
    calls: list[int] = []

    def once(self: Any, conn: Any, *args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise (OperationalError("UPDATE dataset", {}, PgError("40P01", "deadlock detected")) if error == "deadlock"
                   else IntegrityError("INSERT", {}, PgError("23505", "duplicate key")) if error == "integrity"
                   else DataError("INSERT", {}, PgError("22001", "value too long")))
        real(self, conn, *args)

    monkeypatch.setattr(lean.Change, "write", once)
    post(dolma, follow_xml("uuid:f1", A, 1, "watch"))
    assert len(calls) == (2 if error == "deadlock" else 1)
    _assert_visited_once(rt, "watch")


def _assert_visited_once(rt: Any, status: str) -> None:
    """Child A registered (uuid:r1) and visited once (uuid:f1), both applied, nothing left by a failed attempt."""
    with rt.db.session() as s:
        child = s.scalars(select(Entity).where(Entity.uuid == A)).one()
        assert child.version == 2 and child.data["status"] == status
        assert s.scalars(select(EntityEvent.status).order_by(EntityEvent.id)).all() == ["applied", "applied"]
        assert s.scalars(select(SubmissionVersion.instance_id).order_by(SubmissionVersion.id)).all() == [
            "uuid:r1", "uuid:f1"]


def test_postgresql_statements_stay_in_psycopgs_cache(setup: Any, rt: Any) -> None:
    """psycopg keeps the parsed form of a statement (and prepares it on the server after a few runs) only up to a
    length and a number of parameters: the record's one statement and the lean path's must stay below both, or
    every POST pays for parsing them again (docs/benchmarks.md, ingest, sixth round)."""
    if rt.db.is_sqlite:
        pytest.skip("PostgreSQL's statements")
    from psycopg import _queries
    from sqlalchemy.dialects import postgresql

    dolma = phone(setup, "dolma")
    post(dolma, reg_xml("uuid:r1", A, "扎西", "2015-03-14", VILLAGE_A, ID))
    post(dolma, follow_xml("uuid:f1", A, 1, "watch"))
    statements = [ingest._PG_INSERT_ALL.statement, *(p.statement for p in lean._PG_WRITES.values())]
    assert len(statements) >= 3  # the record's, a registration's, a visit's
    for statement in statements:
        compiled = statement.compile(dialect=postgresql.dialect())
        assert len(compiled.string) <= _queries.MAX_CACHED_STATEMENT_LENGTH - 400  # room for a few more columns
        assert len(compiled.binds) <= _queries.MAX_CACHED_STATEMENT_PARAMS - 5
