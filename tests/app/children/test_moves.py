"""Moves between villages, closure and reopening, children turning 18."""
from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.models import AuditEvent
from tests.app.children.casework_helpers import Api, follow_xml, phone, phone_csv, post, reg_xml

VILLAGE_A = "540102002001"
VILLAGE_B = "540121100201"



@pytest.fixture
def child(setup: Any) -> str:
    uid = str(uuid.uuid4())
    post(phone(setup, "dolma"), reg_xml("uuid:r1", uid, "扎西", "2015-03-14", VILLAGE_A))
    post(phone(setup, "dolma"), follow_xml("uuid:f1", uid, 1, "watch", due="2020-01-01"))
    return uid


def test_move_across_counties_changes_both_phones(setup: Any, child: str, rt: Any, make_user: Any) -> None:
    dolma, pema = phone(setup, "dolma"), phone(setup, "pema")
    assert [r["name"] for r in phone_csv(dolma)] == [child] and phone_csv(pema) == []
    coord = Api(setup, "coord")
    resp = coord.post(f"/v1/projects/1/children/{child}/transfer", {"village": VILLAGE_B, "note": "family moved"})
    assert resp.status_code == 200, resp.data
    assert phone_csv(dolma) == []
    rows = phone_csv(pema)
    assert [(r["name"], r["village"], r["status"], r["__version"]) for r in rows] == [(child, VILLAGE_B, "watch", "3")]
    integrity = dolma.get(f"/v1/projects/1/datasets/children/integrity?id={child}").data.decode()
    assert "<deleted>true</deleted>" in integrity
    # The old manager loses the child; the new county's follow-up lands on the same file, whole history kept.
    assert Api(setup, "mgr").get(f"/v1/projects/1/children/{child}").status_code == 404
    post(pema, follow_xml("uuid:f2", child, 3, "healthy"))
    file = coord.get(f"/v1/projects/1/children/{child}").get_json()
    assert [r["instance_id"] for r in file["records"]] == ["uuid:r1", "uuid:f1", "uuid:f2"]
    move = file["history"][2]
    assert move["action"] == "transfer" and move["note"] == "family moved" and move["changed"]["village"] == VILLAGE_B
    assert file["history"][3]["conflict"] is None  # the phone's update was based on the move: no conflict
    # The records follow the child: the new county's manager opens them, the old one no longer does.
    make_user("lhunzhub", "manager", ["540121"])
    record = "/v1/projects/1/forms/child_registration/submissions/uuid:r1"
    assert Api(setup, "lhunzhub").get(record).status_code == 200
    assert Api(setup, "mgr").get(record).status_code == 404
    with rt.db.session() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "child.transfer")).all()
        assert event.details == {"from": VILLAGE_A, "to": VILLAGE_B}


def test_move_rules(setup: Any, child: str, make_user: Any) -> None:
    mgr = Api(setup, "mgr")
    resp = mgr.post(f"/v1/projects/1/children/{child}/transfer", {"village": VILLAGE_B})
    assert resp.status_code == 403 and VILLAGE_B in resp.get_json()["message"]
    assert mgr.post(f"/v1/projects/1/children/{child}/transfer", {"village": "5401"}).status_code == 400
    assert mgr.post(f"/v1/projects/1/children/{child}/transfer", {"village": VILLAGE_A}).status_code == 409
    # A manager whose regions cover both places may move the child inside them.
    resp = mgr.post(f"/v1/projects/1/children/{child}/transfer", {"village": "540102003001"})
    assert resp.status_code == 200 and resp.get_json()["region_code"] == "540102003001"
    make_user("far", "manager", ["540121"])
    assert Api(setup, "far").post(f"/v1/projects/1/children/{child}/transfer",
                                  {"village": VILLAGE_B}).status_code == 404


def test_close_and_reopen(setup: Any, child: str) -> None:
    dolma = phone(setup, "dolma")
    mgr = Api(setup, "mgr")
    assert [c["uuid"] for c in mgr.get("/v1/projects/1/children?overdue=1").get_json()["children"]] == [child]
    assert mgr.post(f"/v1/projects/1/children/{child}/close", {"reason": "bored"}).status_code == 400
    assert mgr.post(f"/v1/projects/1/children/{child}/close", {"reason": "other"}).status_code == 400
    # born 2015: "turned 18" is not why an 11-year-old's case closes
    resp = mgr.post(f"/v1/projects/1/children/{child}/close", {"reason": "turned18"})
    assert resp.status_code == 409 and resp.get_json()["code"] == 409.36, resp.data
    resp = mgr.post(f"/v1/projects/1/children/{child}/close", {"reason": "risk_resolved"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "closed"
    assert phone_csv(dolma) == []
    assert "<deleted>true</deleted>" in dolma.get(
        f"/v1/projects/1/datasets/children/integrity?id={child}").data.decode()
    assert mgr.get("/v1/projects/1/children?overdue=1").get_json()["children"] == []
    assert mgr.get("/v1/projects/1/children/overdue").get_json() == {}
    file = mgr.get(f"/v1/projects/1/children/{child}").get_json()
    assert file["close_reason"] == "risk_resolved" and file["history"][-1]["action"] == "close"
    assert mgr.post(f"/v1/projects/1/children/{child}/close", {"reason": "moved"}).status_code == 409

    resp = mgr.post(f"/v1/projects/1/children/{child}/reopen", {})
    assert resp.status_code == 200
    assert resp.get_json()["status"] == "watch" and resp.get_json()["next_followup_due"] == "2020-01-01"
    assert [(r["name"], r["status"]) for r in phone_csv(dolma)] == [(child, "watch")]
    assert [c["uuid"] for c in mgr.get("/v1/projects/1/children?overdue=1").get_json()["children"]] == [child]
    assert mgr.post(f"/v1/projects/1/children/{child}/reopen", {}).status_code == 409


def test_closure_from_the_follow_up_form_keeps_its_reason(setup: Any, child: str) -> None:
    dolma = phone(setup, "dolma")
    post(dolma, follow_xml("uuid:f9", child, 2, "closed", close_reason="deceased"))
    assert phone_csv(dolma) == []
    file = Api(setup, "mgr").get(f"/v1/projects/1/children/{child}").get_json()
    assert file["close_reason"] == "deceased" and file["closed_at"]


def test_children_turning_18_within_90_days(setup: Any) -> None:
    today = date.today()
    dolma = phone(setup, "dolma")

    def born(days_until_18: int) -> str:
        d = today + timedelta(days=days_until_18)
        return d.replace(year=d.year - 18).isoformat() if not (d.month == 2 and d.day == 29) else \
            date(d.year - 18, 2, 28).isoformat()

    soon, later, past, pema_soon = (str(uuid.uuid4()) for _ in range(4))
    post(dolma, reg_xml("uuid:a", soon, "甲", born(30), VILLAGE_A))
    post(dolma, reg_xml("uuid:b", later, "乙", born(120), VILLAGE_A))
    post(dolma, reg_xml("uuid:c", past, "丙", born(-5), VILLAGE_A))
    post(phone(setup, "pema"), reg_xml("uuid:d", pema_soon, "丁", born(10), VILLAGE_B))
    rows = Api(setup, "mgr").get("/v1/projects/1/children/turning18").get_json()
    assert [(r["uuid"], r["days_left"]) for r in rows] == [(soon, 30)]
    rows = Api(setup, "coord").get("/v1/projects/1/children/turning18").get_json()
    assert [r["uuid"] for r in rows] == [pema_soon, soon]
    assert Api(setup, "coord").get("/v1/projects/1/children/turning18?days=x").status_code == 400


def test_child_page_closes_moves_and_reopens(setup: Any, child: str) -> None:
    from tests.app.web_helpers import Browser

    web = Browser(setup)
    web.login("mgr")
    page = web.get(f"/children/{child}").get_data(as_text=True)
    assert 'id="close-form"' in page and 'id="transfer-form"' in page
    # no reason is chosen for the coordinator, and "turned 18" is not offered for a child born in 2015
    assert '<option value="" selected disabled>' in page and 'value="turned18"' not in page
    assert 'data-url="/regions/search?level=village"' in page  # the village is picked by name
    assert web.post(f"/children/{child}/close", {"reason": "moved"}).status_code == 302
    page = web.get(f"/children/{child}").get_data(as_text=True)
    assert 'id="closed-note"' in page and f"/children/{child}/reopen" in page
    assert phone_csv(phone(setup, "dolma")) == []
    assert web.post(f"/children/{child}/reopen", {}).status_code == 302
    assert [r["name"] for r in phone_csv(phone(setup, "dolma"))] == [child]
    assert web.post(f"/children/{child}/transfer", {"village": "540102003001"}).status_code == 302
    assert [r["village"] for r in phone_csv(phone(setup, "dolma"))] == ["540102003001"]
    # what the service refuses comes back to the file's case-work forms, saying why
    resp = web.post(f"/children/{child}/transfer", {"village": VILLAGE_B})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/children/{child}#case-actions")
    assert VILLAGE_B in web.get(f"/children/{child}").get_data(as_text=True)
    assert web.post(f"/children/{child}/close", {"reason": "turned18"}).status_code == 302
    assert 'id="closed-note"' not in web.get(f"/children/{child}").get_data(as_text=True)
    assert "turning18" in web.get("/children").get_data(as_text=True)
    assert web.get("/children/turning18").status_code == 200


def test_late_offline_update_keeps_the_case_closed(setup: Any, child: str) -> None:
    mgr = Api(setup, "mgr")
    assert mgr.post(f"/v1/projects/1/children/{child}/close", {"reason": "risk_resolved"}).status_code == 200
    # A visit recorded offline before the closure reached the phone: kept in the file, the case stays closed.
    post(phone(setup, "dolma"), follow_xml("uuid:late", child, 2, "watch", due="2031-01-01"))
    file = mgr.get(f"/v1/projects/1/children/{child}").get_json()
    assert "uuid:late" in {r["instance_id"] for r in file["records"]}
    assert file["child"]["status"] == "closed" and file["close_reason"] == "risk_resolved"
    assert phone_csv(phone(setup, "dolma")) == []
    assert mgr.get("/v1/projects/1/children?overdue=1").get_json()["children"] == []


def test_turned_18_fits_from_90_days_before_the_birthday(setup: Any) -> None:
    today = date.today()
    dolma, mgr = phone(setup, "dolma"), Api(setup, "mgr")

    def born(days_until_18: int) -> str:
        d = today + timedelta(days=days_until_18)
        return date(d.year - 18, d.month, 28 if (d.month, d.day) == (2, 29) else d.day).isoformat()

    near, far = str(uuid.uuid4()), str(uuid.uuid4())
    post(dolma, reg_xml("uuid:n", near, "甲", born(80), VILLAGE_A))
    post(dolma, reg_xml("uuid:f", far, "乙", born(120), VILLAGE_A))
    assert mgr.post(f"/v1/projects/1/children/{far}/close", {"reason": "turned18"}).status_code == 409
    assert mgr.post(f"/v1/projects/1/children/{near}/close", {"reason": "turned18"}).status_code == 200


def test_village_search_offers_villages_only(setup: Any) -> None:
    from tests.app.web_helpers import Browser

    web = Browser(setup)
    web.login("mgr")
    found = web.get("/regions/search?q=八廓&level=village").get_json()
    assert found and all(len(r["code"]) == 12 for r in found)
    assert any(len(r["code"]) < 12 for r in web.get("/regions/search?q=八廓").get_json())
