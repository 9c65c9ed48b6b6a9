"""An export of one county walks only that county's records: the (form, county, received, id) index of migration
0027 and the condition tabular.Plan._where() adds for a region filter of six or more digits. The condition is
implied by the region filter, so the rows are the same with and without it; and the page query reads through
the index on both databases."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, update

from app.models import Dataset, Entity, Submission
from app.services.exports import tabular
from tests.app.conftest import PASSWORD
from tests.app.exports.test_exports import VILLAGE_A, VILLAGE_B, Api, arriving, care_xml, direct, send
from tests.support.digest_client import DigestClient

INDEX = "ix_submission_form_county_created_id"
QUERIES = ("", "?region=540121", "?region=540121100201", "?region=540102", "?region=5401", "?region=540123",
           "?region=540121&date_from=2026-03-04", "?region=540102&review_states=approved", "?form_version=1")


@pytest.fixture
def counties(app: Any, rt: Any, make_user: Any, publish: Any) -> list[str]:
    """Eight records from two counties arriving alternately, two of them in the same second; one approved; one
    whose region code is only a prefecture's (shorter than a county)."""
    iids = arriving(app, rt, make_user, publish, [f"uuid:c{i}" for i in range(8)], [1 + min(i, 6) for i in range(8)])
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    with rt.db.write() as s:
        s.execute(update(Submission).where(Submission.instance_id == "uuid:c3").values(review_state="approved"))
        s.execute(update(Submission).where(Submission.instance_id == "uuid:c5").values(region_code="5401"))
    # Records without a region code of their own (an update form without region questions): a manager sees
    # those about a child of the manager's regions — c8 about a child of Village B, c9 of Village A.
    late = (("uuid:c8", VILLAGE_B, 2), ("uuid:c9", VILLAGE_A, 4))
    for iid, village, _day in late:
        send(phone, care_xml(iid, village=village))
    with rt.db.write() as s:
        ds = s.scalar(select(Dataset).where(Dataset.project_id == 1, Dataset.name == "children"))
        if ds is None:
            ds = Dataset(project_id=1, name="children")
            s.add(ds)
            s.flush()
        for iid, village, day in late:
            child = str(uuid.uuid4())
            s.add(Entity(dataset_id=ds.id, uuid=child, label=iid, region_code=village))
            s.execute(update(Submission).where(Submission.instance_id == iid).values(
                region_code=None, entity_uuid=child, created_at=datetime(2026, 3, day, 18, tzinfo=UTC)))
    return iids


def _exports(app: Any, users: list[str]) -> dict[tuple[str, str], Any]:
    return {(u, q): direct(Api(app, u), q) for u in users for q in QUERIES}


def test_a_county_export_gives_the_same_rows_with_and_without_the_county_condition(
        app: Any, rt: Any, make_user: Any, counties: list[str], monkeypatch: Any) -> None:
    make_user("admin1", "admin")
    make_user("mgr_b", "manager", ["540121"])      # one county
    make_user("mgr_v", "manager", [VILLAGE_B])      # one village of it
    make_user("mgr_p", "manager", ["5401"])         # a prefecture: no county condition
    users = ["admin1", "mgr_b", "mgr_v", "mgr_p"]
    statements: list[str] = []

    def keep(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", keep)
    try:
        with_condition = _exports(app, users)
        used = sum("substr(" in s for s in statements)
        monkeypatch.setattr(tabular, "COUNTY_DIGITS", 99)  # no region filter is that long: no condition
        statements.clear()
        without = _exports(app, users)
        assert not any("substr(" in s for s in statements)
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", keep)
    assert used > 0
    assert with_condition == without
    keys = {k: [r[v["care.csv"][0].index("KEY")] for r in v["care.csv"][1:]] for k, v in with_condition.items()}
    assert keys[("admin1", "?region=540121")] == ["uuid:c6", "uuid:c4", "uuid:c2", "uuid:c0"]  # Central: newest first
    assert keys[("admin1", "?region=540102")] == ["uuid:c7", "uuid:c3", "uuid:c1"]  # c5 is only "5401"
    assert keys[("admin1", "?region=5401")] == ["uuid:c7", "uuid:c6", "uuid:c5", "uuid:c4", "uuid:c3", "uuid:c2",
                                                 "uuid:c1", "uuid:c0"]
    assert keys[("admin1", "?region=540102&review_states=approved")] == ["uuid:c3"]
    assert keys[("mgr_b", "")] == keys[("mgr_v", "")] == ["uuid:c6", "uuid:c4", "uuid:c2", "uuid:c8", "uuid:c0"]
    assert keys[("mgr_b", "?region=540121")] == keys[("admin1", "?region=540121")]  # no c8: it has no region
    assert keys[("mgr_b", "?form_version=1")] == keys[("mgr_b", "")]  # the walks join the version for this one
    assert keys[("mgr_p", "")] == keys[("admin1", "")] == ["uuid:c7", "uuid:c6", "uuid:c5", "uuid:c4", "uuid:c9",
                                                          "uuid:c3", "uuid:c2", "uuid:c8", "uuid:c1", "uuid:c0"]
    assert keys[("mgr_b", "?region=540102")] == []  # outside the manager's own county
    assert keys[("admin1", "?region=540123")] == []
    members = with_condition[("admin1", "?region=540121")]["care-members.csv"]
    assert len(members) == 1 + 2  # c2 and c4 have a member row (c0 and c6 none)


@pytest.mark.parametrize("who", ["admin1", "mgr_b"])
def test_a_county_page_walks_the_county_index(app: Any, rt: Any, make_user: Any, counties: list[str],
                                              who: str) -> None:
    """The page query of a county export reads the county's index entries, not the form's (no SCAN of the
    table, no walk of ix_submission_form_created_id), on the first page and on the pages after a keyset
    position: an admin's with a county filter; a county manager's without one (one walk for the county, one
    for the records without a region code)."""
    from app.models import User
    from app.services.exports import ExportOptions

    make_user("admin1", "admin")
    make_user("mgr_b", "manager", ["540121"])
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "substr(" in statement and "ORDER BY" in statement:
            seen.append((statement, params))

    options = {"format": "csvzip", "region": "540121"} if who == "admin1" else {"format": "csvzip"}
    event.listen(rt.db.engine, "before_cursor_execute", keep)
    try:
        with rt.db.session() as s:
            user = s.query(User).filter_by(username=who).one()
            plan = tabular.plan_for(s, 1, "care", user, ExportOptions.parse(options))
            got = [r.key for r in plan.records(s, batch=2)]
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", keep)
    if who == "admin1":
        assert got == ["uuid:c0", "uuid:c2", "uuid:c4", "uuid:c6"]
        assert len(seen) == 3  # two full pages and the empty last one
    else:
        assert got == ["uuid:c0", "uuid:c8", "uuid:c2", "uuid:c4", "uuid:c6"]
        assert len(seen) == 3 and all(s.count("substr(") == 2 for s, _ in seen)  # the county's walk, no region's
    with rt.db.engine.connect() as conn:
        for statement, params in seen:
            if conn.dialect.name == "sqlite":
                plan_text = " ".join(str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                              params))
                assert f"SEARCH submission USING INDEX {INDEX}" in plan_text, plan_text
                assert "SCAN submission" not in plan_text and "form_created_id" not in plan_text, plan_text
            else:
                # a tiny table: ask which index serves when the table is not scanned whole
                conn.exec_driver_sql("SET enable_seqscan = off")
                conn.exec_driver_sql("SET enable_bitmapscan = off")
                plan_text = " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
                assert f"Index Scan using {INDEX} on submission" in plan_text, plan_text
                assert "Seq Scan on submission " not in plan_text and "form_created_id" not in plan_text, plan_text
                if who == "admin1":
                    assert "Sort" not in plan_text, plan_text  # the index gives the order


def test_a_county_managers_parallel_export_splits_along_the_same_walk(app: Any, rt: Any, make_user: Any,
                                                                      counties: list[str], monkeypatch: Any) -> None:
    """Chunk bounds (parallel.py) come from the same walks as the pages (Plan.positions): a county manager's
    CSV zip in 2 and 3 processes, in chunks of one or two records, is byte for byte the one-process zip,
    records without a region included."""
    import io

    from app.services.exports import ExportOptions
    from app.services.exports.csvzip import write_csvzip
    from tests.app.exports.test_exports import children_take_chunks, tables, zip_entries

    mgr = make_user("mgr_b", "manager", ["540121"])

    def export(processes: int) -> bytes:
        with rt.db.session() as s:
            plan = tabular.plan_for(s, 1, "care", mgr, ExportOptions.parse({"format": "csvzip"}))
            out = io.BytesIO()
            write_csvzip(plan, s, out, rt.store, processes=processes, threshold=0)
            return out.getvalue()

    one = export(1)
    keys = [r[tables(one)["care.csv"][0].index("KEY")] for r in tables(one)["care.csv"][1:]]
    assert keys == ["uuid:c0", "uuid:c8", "uuid:c2", "uuid:c4", "uuid:c6"]  # jobs: in the order received
    children_take_chunks(monkeypatch, min_chunk=1)
    for processes in (2, 3):
        assert zip_entries(export(processes)) == zip_entries(one)


def test_a_part_of_an_export_has_one_bound_on_each_side_per_page(app: Any, rt: Any, make_user: Any,
                                                                 counties: list[str]) -> None:
    """A part of a parallel export (`after`/`upto`): after its first page, the previous page's last position
    replaces the part's own lower bound. With both, PostgreSQL multiplied the two selectivities, took the part
    for a few rows and read all of them through a bitmap and a sort for every page."""
    from app.models import User
    from app.services.exports import ExportOptions

    make_user("admin1", "admin")
    seen: list[str] = []

    def keep(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "ORDER BY" in statement and "LIMIT" in statement:
            seen.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", keep)
    try:
        with rt.db.session() as s:
            user = s.query(User).filter_by(username="admin1").one()
            plan = tabular.plan_for(s, 1, "care", user, ExportOptions.parse({"format": "csvzip", "region": "54"}))
            every = [(r.key, r.meta[0]) for r in plan.records(s)]
            with_ids = {iid: sid for iid, sid in s.query(Submission.instance_id, Submission.id)}
            positions = [(s.get(Submission, with_ids[k]).created_at, with_ids[k]) for k, _ in every]  # type: ignore[union-attr]
            seen.clear()
            part = [r.key for r in plan.records(s, batch=2, after=positions[1], upto=positions[7])]
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", keep)
    assert part == [k for k, _ in every[2:8]]
    assert len(seen) == 4  # three full pages, then an empty one
    for statement in seen:
        assert statement.count("submission.id) > (") == 1 and statement.count("submission.id) <= (") == 1, statement
