"""Duplicate children: flagged on registration, listed for coordinators, merged or kept apart."""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from app.models import AuditEvent, Entity, Submission
from tests.app.children.casework_helpers import Api, follow_xml, phone, phone_csv, post, reg_xml

VILLAGE_A = "540102002001"  # Chengguan, township 540102002
VILLAGE_A2 = "540102002002"  # the same township
VILLAGE_B = "540121100201"  # Lhünzhub county
ID = "54010220150314002X"



def test_pinyin_names() -> None:
    from app.services.children.duplicates import pinyin_key, similar_names

    assert pinyin_key("扎西") == pinyin_key("扎喜") == pinyin_key("札西") == "zhaxi"
    assert similar_names("扎西卓玛", "扎喜卓玛") and similar_names("次仁", "次人")
    assert not similar_names("扎西", "次仁")


def test_same_id_number_across_counties_flagged_then_merged(setup: Any, rt: Any) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    dolma, pema = phone(setup, "dolma"), phone(setup, "pema")
    post(dolma, reg_xml("uuid:r1", a, "扎西", "2015-03-14", VILLAGE_A, ID))
    post(dolma, follow_xml("uuid:f1", a, 1, "watch", due="2030-01-01"))
    # Another director, another county, another spelling: the same ID number.
    post(pema, reg_xml("uuid:r2", b, "札西", "2015-03-14", VILLAGE_B, ID))
    post(pema, follow_xml("uuid:f2", b, 1, "refer"))
    coord = Api(setup, "coord")
    pairs = coord.get("/v1/projects/1/children/duplicates").get_json()
    assert len(pairs) == 1 and pairs[0]["reasons"] == ["id_number"]
    assert {c["uuid"] for c in pairs[0]["children"]} == {a, b}
    # The manager of Chengguan sees only one of the two: the pair is not listed for them (403: not a coordinator).
    assert Api(setup, "mgr").get("/v1/projects/1/children/duplicates").status_code == 403

    resp = coord.post(f"/v1/projects/1/children/{b}/merge", {"into": a})
    assert resp.status_code == 200, resp.data
    # One child on the phones: the merged one leaves pema's list; integrity reports it deleted.
    assert phone_csv(pema) == []
    assert [r["name"] for r in phone_csv(dolma)] == [a]
    integrity = pema.get(f"/v1/projects/1/datasets/children/integrity?id={b}").data.decode()
    assert f'<entity id="{b}"><deleted>true</deleted></entity>' in integrity
    # Both histories on the survivor: four records, the merged child's versions on the timeline.
    file = coord.get(f"/v1/projects/1/children/{a}").get_json()
    assert sorted(r["instance_id"] for r in file["records"]) == ["uuid:f1", "uuid:f2", "uuid:r1", "uuid:r2"]
    merged = [h for h in file["history"] if h["merged_from"] == b]
    assert [h["version"] for h in merged] == [1, 2]
    assert file["history"][-1]["action"] == "merge"
    assert coord.get(f"/v1/projects/1/children/{b}").status_code == 404
    assert coord.get("/v1/projects/1/children/duplicates").get_json() == []
    with rt.db.session() as s:
        assert set(s.scalars(select(Submission.entity_uuid))) == {a}
        gone = s.scalars(select(Entity).where(Entity.uuid == b)).one()
        assert gone.deleted_at is not None and gone.merged_into == a
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "child.merge")).all()
        assert event.username == "coord" and event.details["merged"] == b
    # A phone that still had the merged child offline: its update lands on the survivor.
    post(pema, follow_xml("uuid:f3", b, 2, "urgent"))
    file = coord.get(f"/v1/projects/1/children/{a}").get_json()
    assert file["child"]["status"] == "urgent" and "uuid:f3" in {r["instance_id"] for r in file["records"]}


def test_variant_spelling_in_same_township_is_flagged(setup: Any) -> None:
    a, b, c = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    post(phone(setup, "dolma"), reg_xml("uuid:r1", a, "扎西卓玛", "2015-03-14", VILLAGE_A))
    # Re-registered by another director of the same township, with 喜 for 西 and a birth date off by 10 days.
    post(phone(setup, "tenzin"), reg_xml("uuid:r2", b, "扎喜卓玛", "2015-03-24", VILLAGE_A2))
    # A similar name in another county is not flagged (not the same township, no ID match).
    post(phone(setup, "pema"), reg_xml("uuid:r3", c, "扎喜卓玛", "2015-03-20", VILLAGE_B))
    pairs = Api(setup, "coord").get("/v1/projects/1/children/duplicates").get_json()
    assert [(p["reasons"], {x["uuid"] for x in p["children"]}) for p in pairs] == [(["similar_name"], {a, b})]


def test_same_name_and_birth_date_anywhere_in_province(setup: Any) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    post(phone(setup, "dolma"), reg_xml("uuid:r1", a, "次仁", "2012-07-01", VILLAGE_A))
    post(phone(setup, "pema"), reg_xml("uuid:r2", b, "次仁", "2012-07-01", VILLAGE_B))
    pairs = Api(setup, "coord").get("/v1/projects/1/children/duplicates").get_json()
    assert [p["reasons"] for p in pairs] == [["name_birth"]]


def test_not_the_same_child_is_never_flagged_again(setup: Any, rt: Any) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    dolma = phone(setup, "dolma")
    post(dolma, reg_xml("uuid:r1", a, "次仁", "2012-07-01", VILLAGE_A))
    post(dolma, reg_xml("uuid:r2", b, "次仁", "2012-07-01", VILLAGE_A))
    coord = Api(setup, "coord")
    assert len(coord.get("/v1/projects/1/children/duplicates").get_json()) == 1
    assert coord.post(f"/v1/projects/1/children/{a}/distinct", {"other": b}).status_code == 200
    assert coord.get("/v1/projects/1/children/duplicates").get_json() == []
    # Twins re-registered again: still not flagged; merging them is refused with a reason.
    with rt.db.write() as s:
        from app.models import SubmissionVersion
        from app.services.children import duplicates

        new = s.scalars(select(Entity).where(Entity.uuid == b)).one()
        sv = s.scalars(select(SubmissionVersion).where(SubmissionVersion.instance_id == "uuid:r2")).one()
        duplicates.check_new_child(s, new, sv)
    assert coord.get("/v1/projects/1/children/duplicates").get_json() == []
    resp = coord.post(f"/v1/projects/1/children/{a}/merge", {"into": b})
    assert resp.status_code == 409 and "not the same child" in resp.get_json()["message"]
    assert len(phone_csv(dolma)) == 2


def test_merge_is_for_coordinators_within_scope(setup: Any, make_user: Any) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    post(phone(setup, "dolma"), reg_xml("uuid:r1", a, "次仁", "2012-07-01", VILLAGE_A))
    post(phone(setup, "pema"), reg_xml("uuid:r2", b, "次仁", "2012-07-01", VILLAGE_B))
    assert Api(setup, "mgr").post(f"/v1/projects/1/children/{b}/merge", {"into": a}).status_code == 403
    make_user("coord2", "coordinator", ["540102"])
    resp = Api(setup, "coord2").post(f"/v1/projects/1/children/{b}/merge", {"into": a})
    assert resp.status_code == 404  # b lies outside coord2's regions
    assert Api(setup, "coord").post(f"/v1/projects/1/children/{b}/merge", {}).status_code == 400
    assert Api(setup, "coord").post(f"/v1/projects/1/children/{b}/merge", [1]).status_code == 400


def test_duplicates_page_merges_with_one_button(setup: Any) -> None:
    from tests.app.web_helpers import Browser

    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    post(phone(setup, "dolma"), reg_xml("uuid:r1", a, "次仁", "2012-07-01", VILLAGE_A))
    post(phone(setup, "pema"), reg_xml("uuid:r2", b, "次仁", "2012-07-01", VILLAGE_B))
    web = Browser(setup)
    web.login("coord")
    page = web.get("/children/duplicates").get_data(as_text=True)
    assert "姓名和出生日期相同" in page or "Same name and date of birth" in page
    assert f'/children/{b}/merge' in page and f'value="{a}"' in page
    file_page = web.get(f"/children/{a}").get_data(as_text=True)
    assert 'id="duplicate-flag"' in file_page
    resp = web.post(f"/children/{b}/merge", {"into": a})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/children/{a}")
    assert 'id="no-duplicates"' in web.get("/children/duplicates").get_data(as_text=True)
    assert web.get(f"/children/{b}").status_code == 404
    mgr = Browser(setup)
    mgr.login("mgr")
    assert mgr.get("/children/duplicates").status_code in (302, 403)


def test_the_check_reads_through_indexes_not_the_whole_list(setup: Any, rt: Any) -> None:
    """The duplicate check's lookups (the same birth date, the township within a month, the same ID number) are
    index searches: their cost follows the few children they find, not the size of the care file."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "birth_date" in statement or "child_directory.id_number =" in statement:
            seen.append((statement, params))

    event.listen(rt.db.engine, "before_cursor_execute", keep)
    try:
        post(phone(setup, "dolma"), reg_xml("uuid:r9", str(uuid.uuid4()), "扎西", "2015-03-14", VILLAGE_A, ID))
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", keep)
    assert len(seen) >= 3  # same day, township within a month, ID number
    with rt.db.engine.connect() as conn:
        for statement, params in seen:
            if conn.dialect.name == "sqlite":
                plan = " ".join(str(r[3]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
                assert "SCAN" not in plan and "dataset_region" not in plan, plan
            else:
                conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: ask whether an index serves
                plan = " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
                assert "Seq Scan" not in plan and "dataset_region" not in plan, plan
