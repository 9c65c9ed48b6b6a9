"""The access policy on the attacks of issue 8: writes across county lines are held for review,
sensitive answers are masked on every read path, integrity lists only one's own children, and
users grant only regions inside their own scope."""
from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.models import AuditEvent, Entity, EntityEvent, HeldChange, Submission, SubmissionVersion
from tests.app.access.access_world import (
    PHOTO_A,
    VILLAGE_A,
    VILLAGE_B,
    World,
    basic,
    build_world,
    post_submission,
    reg_xml,
    visit_xml,
)
from tests.app.web_helpers import Browser

OUTSIDE = "不在您负责的区域内"  # "... lies outside your own regions" (the page is in Chinese)


def holds(body: str, text: str) -> bool:
    """Whether the body holds the text, as it is or escaped in JSON."""
    return text in body or json.dumps(text)[1:-1] in body


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "ALLOW_BASIC_OVER_HTTP": True, "EXPORT_WORKER": "false"}


@pytest.fixture
def world(app: Any, rt: Any, publish: Any) -> World:
    return build_world(app, rt, publish)


def entity(rt: Any, uid: str) -> Entity | None:
    with rt.db.session() as s:
        return s.scalar(select(Entity).where(Entity.uuid == uid))


def csv_of(app: Any, world: World, user: str) -> str:
    resp = app.test_client().get(f"/v1/key/{world.tokens[user]}/projects/1/forms/visit/attachments/children.csv",
                                 headers={"X-OpenRosa-Version": "1.0"})
    assert resp.status_code == 200
    return str(resp.get_data(as_text=True))


# ---------------------------------------------------------------- 1. integrity


def test_integrity_without_ids_lists_only_the_callers_children(app: Any, world: World) -> None:
    for url, headers in ((f"/v1/key/{world.tokens['col_a']}/projects/1/datasets/children/integrity", {}),
                         ("/v1/projects/1/datasets/children/integrity", basic("mgr_a"))):
        body = app.test_client().get(url, headers={"X-OpenRosa-Version": "1.0", **headers}).get_data(as_text=True)
        assert world.a.child in body and world.b.child not in body, url


# ---------------------------------------------------------------- 2, 6: entity writes across county lines


def test_update_of_another_countys_child_is_held_then_applied(app: Any, rt: Any, world: World) -> None:
    client = app.test_client()
    resp = post_submission(client, "col_a", visit_xml(f"uuid:{uuid.uuid4()}", world.b.child, 1, status="closed"))
    assert resp.status_code == 201 and "review" in resp.get_data(as_text=True)  # stored, never refused
    assert (entity(rt, world.b.child) or Entity()).version == 1  # not applied
    assert "closed" not in csv_of(app, world, "col_b")
    with rt.db.session() as s:
        held = s.scalar(select(HeldChange).where(HeldChange.target == world.b.child))
        assert held is not None and held.status == "pending" and held.regions == [VILLAGE_B]
        held_id = held.id
    # County A's coordinator cannot decide it; county B's can.
    assert client.post(f"/v1/projects/1/held-changes/{held_id}", json={"action": "apply"},
                       headers=basic("coord_a")).status_code == 404
    listed = client.get("/v1/projects/1/held-changes", headers=basic("coord_b")).get_json()
    assert held_id in [h["id"] for h in listed]
    resp = client.post(f"/v1/projects/1/held-changes/{held_id}", json={"action": "apply"}, headers=basic("coord_b"))
    assert resp.status_code == 200 and resp.get_json()["status"] == "applied"
    child = entity(rt, world.b.child)
    assert child is not None and child.version == 2 and child.data["status"] == "closed"
    again = client.post(f"/v1/projects/1/held-changes/{held_id}", json={"action": "reject"}, headers=basic("coord_b"))
    assert again.status_code == 409
    with rt.db.session() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "held.apply")) is not None


def test_registration_outside_the_collectors_regions_is_held_then_rejected(app: Any, rt: Any, world: World) -> None:
    client = app.test_client()
    uid = str(uuid.uuid4())
    resp = post_submission(client, "col_a", reg_xml(f"uuid:{uuid.uuid4()}", uid, "戊OUTSIDE", VILLAGE_B))
    assert resp.status_code == 201
    assert entity(rt, uid) is None and uid not in csv_of(app, world, "col_b")
    with rt.db.session() as s:
        held_id = s.scalar(select(HeldChange.id).where(HeldChange.target == uid))
    b = Browser(app)
    assert b.login("coord_b").status_code == 302
    page = b.get("/held").get_data(as_text=True)
    assert f'id="held-{held_id}"' in page
    assert b.post(f"/held/{held_id}", {"action": "reject", "note": "wrong village"}).status_code == 302
    assert entity(rt, uid) is None
    with rt.db.session() as s:
        assert s.get(HeldChange, held_id).status == "rejected"  # type: ignore[union-attr]
        ev = s.scalar(select(EntityEvent).where(EntityEvent.entity_uuid == uid))
        assert ev is not None and ev.status == "rejected"


def test_registration_inside_the_collectors_regions_is_applied(app: Any, rt: Any, world: World) -> None:
    uid = str(uuid.uuid4())
    assert post_submission(app.test_client(), "col_a", reg_xml(f"uuid:{uuid.uuid4()}", uid, "己INSIDE",
                                                               VILLAGE_A)).status_code == 201
    assert entity(rt, uid) is not None and uid in csv_of(app, world, "col_a")


# ---------------------------------------------------------------- 3: edits of another county's record


def test_edit_of_another_countys_submission_is_held(app: Any, rt: Any, world: World) -> None:
    client = app.test_client()
    new_id = f"uuid:{uuid.uuid4()}"
    resp = post_submission(client, "col_a", reg_xml(new_id, world.b.child, "乙FARNAME", VILLAGE_A,
                                                    deprecated=world.b.instance))
    assert resp.status_code == 201 and "review" in resp.get_data(as_text=True)
    with rt.db.session() as s:
        sub = s.scalar(select(Submission).where(Submission.instance_id == world.b.instance))
        assert sub is not None and sub.region_code == VILLAGE_B  # did not move into county A
        current = s.get(SubmissionVersion, sub.current_version_id)
        assert current is not None and current.instance_id == world.b.instance
    # Manager B still reads it; manager A still gets 404.
    assert client.get(f"/v1/projects/1/forms/reg/submissions/{world.b.instance}",
                      headers=basic("mgr_b")).status_code == 200
    assert client.get(f"/v1/projects/1/forms/reg/submissions/{world.b.instance}",
                      headers=basic("mgr_a")).status_code == 404
    with rt.db.session() as s:
        held_id = s.scalar(select(HeldChange.id).where(HeldChange.kind == "edit"))
    resp = client.post(f"/v1/projects/1/held-changes/{held_id}", json={"action": "apply"}, headers=basic("coord_b"))
    assert resp.status_code == 404  # the edit would move the record into county A: B alone may not decide
    resp = client.post(f"/v1/projects/1/held-changes/{held_id}", json={"action": "apply"}, headers=basic("root"))
    assert resp.status_code == 200
    with rt.db.session() as s:
        sub = s.scalar(select(Submission).where(Submission.instance_id == world.b.instance))
        current = s.get(SubmissionVersion, sub.current_version_id)  # type: ignore[union-attr]
        assert current is not None and current.instance_id == new_id and sub.region_code == VILLAGE_A  # type: ignore[union-attr]


def test_two_coordinators_deciding_at_once_get_one_decision(app: Any, rt: Any, world: World) -> None:
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def decide(user: str, action: str) -> None:
        client = app.test_client()
        barrier.wait()
        codes.append(client.post(f"/v1/projects/1/held-changes/{world.a.held_id}", json={"action": action},
                                 headers=basic(user)).status_code)

    threads = [threading.Thread(target=decide, args=("coord_a", "apply")),
               threading.Thread(target=decide, args=("root", "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 409]
    with rt.db.session() as s:
        assert s.get(HeldChange, world.a.held_id).status in ("applied", "rejected")  # type: ignore[union-attr]


# ---------------------------------------------------------------- 4: sensitive answers on every read path


def test_sensitive_answers_are_masked_for_managers(app: Any, rt: Any, world: World) -> None:
    client = app.test_client()
    paths = ["/v1/projects/1/forms/reg.svc/Submissions", f"/v1/projects/1/children/{world.a.child}",
             "/v1/projects/1/datasets/children/entities", f"/v1/projects/1/datasets/children/entities/{world.a.child}",
             "/v1/projects/1/datasets/children.svc/Entities", "/v1/projects/1/children"]
    for path in paths:
        body = client.get(path, headers=basic("mgr_a")).get_data(as_text=True)
        assert not holds(body, world.a.name) and not holds(body, world.a.label), path
        full = client.get(path, headers=basic("mgr_s")).get_data(as_text=True)  # granted: sees it
        assert holds(full, world.a.label), path
    photo = f"/v1/projects/1/forms/reg/submissions/{world.a.instance}/attachments/p.jpg"
    assert client.get(photo, headers=basic("mgr_a")).status_code == 403
    assert client.get(photo, headers=basic("mgr_s")).get_data() == PHOTO_A
    house = f"/v1/projects/1/forms/reg/submissions/{world.a.instance}/attachments/h.jpg"
    assert client.get(house, headers=basic("mgr_a")).status_code == 200  # not sensitive
    listed = client.get(f"/v1/projects/1/forms/reg/submissions/{world.a.instance}/attachments",
                        headers=basic("mgr_a")).get_json()
    assert [a["name"] for a in listed] == ["h.jpg"]
    b = Browser(app)
    assert b.login("mgr_a").status_code == 302
    page = b.get(f"/submissions/reg/{world.a.instance}").get_data(as_text=True)
    assert world.a.name not in page and "***" in page and "p.jpg" not in page
    with rt.db.session() as s:
        views = s.scalars(select(AuditEvent).where(AuditEvent.action == "child.view")).all()
        assert {e.username: e.details.get("unmasked") for e in views} == {"mgr_a": False, "mgr_s": True}


def test_raw_xml_is_masked(rt: Any, world: World) -> None:
    from app.models import FormVersion, User
    from app.services import access
    from app.services.forms import schema_of

    with rt.db.session() as s:
        sv = s.scalar(select(SubmissionVersion).where(SubmissionVersion.instance_id == world.a.instance))
        assert sv is not None
        schema = schema_of(s.get(FormVersion, sv.form_version_id))
        mgr = s.scalar(select(User).where(User.username == "mgr_a"))
        coord = s.scalar(select(User).where(User.username == "coord_a"))
        masked = access.Redactor(s, mgr, 1).xml(schema, sv.xml)  # type: ignore[arg-type]
        assert world.a.name.encode() not in masked and b"<child_name>***</child_name>" in masked
        assert b"<child_label>***</child_label>" in masked and VILLAGE_A.encode() in masked
        assert access.Redactor(s, coord, 1).xml(schema, sv.xml) == sv.xml  # type: ignore[arg-type]


# ---------------------------------------------------------------- 5: no regions, grants


def test_users_without_regions_see_nothing(app: Any, world: World) -> None:
    client = app.test_client()
    for user in ("mgr_none", "coord_none"):
        body = client.get("/v1/projects/1/forms/reg.svc/Submissions", headers=basic(user)).get_json()
        assert body["value"] == [], user
        assert client.get("/v1/projects/1/children", headers=basic(user)).get_json()["total"] == 0


def test_coordinators_grant_only_inside_their_regions(app: Any, rt: Any, world: World) -> None:
    b = Browser(app)
    assert b.login("coord_a").status_code == 302
    b.get("/collectors/new")
    resp = b.post("/collectors/new", {"username": "sneaky", "password": "long enough pw", "regions": "54"})
    assert resp.status_code == 400 and OUTSIDE in resp.get_data(as_text=True)
    resp = b.post("/collectors/new", {"username": "fine", "password": "long enough pw", "regions": "540102004"})
    assert resp.status_code == 302
    page = b.get("/collectors").get_data(as_text=True)
    assert "col_a" in page and "col_b" not in page
    assert b.get("/collectors/col_b/edit").status_code == 404
    b.get("/collectors/col_a/edit")
    resp = b.post("/collectors/col_a/edit", {"regions": "540121", "display_name": "x"})
    assert resp.status_code == 400 and OUTSIDE in resp.get_data(as_text=True)


def test_bulk_reads_of_identifying_details_are_audited(app: Any, rt: Any, world: World) -> None:
    client = app.test_client()
    for user in ("coord_a", "mgr_a"):
        assert client.get("/v1/projects/1/forms/reg.svc/Submissions", headers=basic(user)).status_code == 200
        assert client.get("/v1/projects/1/datasets/children.svc/Entities", headers=basic(user)).status_code == 200
        assert client.get("/v1/projects/1/datasets/children/entities", headers=basic(user)).status_code == 200
    with rt.db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action.in_(("odata.read", "entities.read")))).all()
        assert {(e.username, e.action) for e in rows} == {("coord_a", "odata.read"), ("coord_a", "entities.read")}
        assert all(e.details.get("unmasked") for e in rows) and len(rows) == 3
