"""The child file API: one child's whole file, scoped by role and region; sessions."""
from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from tests.app.children.test_entities import VILLAGE_A, post
from tests.app.conftest import PASSWORD
from tests.support.api_client import ApiClient
from tests.support.digest_client import DigestClient
from tests.support.entity_forms import register_xml, update_xml


@pytest.fixture
def child(phone_a: DigestClient) -> str:
    uid = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r1", uid, "Dolkar", VILLAGE_A))
    post(phone_a, update_xml("uuid:u1", uid, base=1, status="watch", due="2020-01-31"))
    return uid


def get(client: Any, name: str, url: str) -> Any:
    return client.get(url, headers=ApiClient(client.application, name).headers)


@pytest.fixture
def phone_a(app: Any, make_user: Any, publish: Any) -> DigestClient:
    from tests.support.entity_forms import REGISTER_MD, UPDATE_MD

    publish(REGISTER_MD, "register.md")
    publish(UPDATE_MD, "followup.md")
    make_user("dolma", "collector", ["540102"])
    return DigestClient(app.test_client(), "dolma", PASSWORD)


def test_manager_reads_whole_file_in_time_order(app: Any, make_user: Any, child: str) -> None:
    make_user("mgr", "manager", ["540102"])
    resp = get(app.test_client(), "mgr", f"/v1/projects/1/children/{child}")
    assert resp.status_code == 200, resp.data
    body = resp.get_json()
    assert body["child"]["status"] == "watch" and body["child"]["next_followup_due"] == "2020-01-31"
    assert [r["form_id"] for r in body["records"]] == ["register", "followup"]
    assert [h["version"] for h in body["history"]] == [1, 2]
    assert body["history"][1]["changed"] == {"status": "watch", "next_followup_due": "2020-01-31"}


def test_manager_of_another_county_gets_404(app: Any, make_user: Any, child: str) -> None:
    make_user("other", "manager", ["540121"])
    resp = get(app.test_client(), "other", f"/v1/projects/1/children/{child}")
    assert resp.status_code == 404
    listed = get(app.test_client(), "other", "/v1/projects/1/children").get_json()
    assert listed == {"total": 0, "children": []}


def test_collector_may_not_read_files(app: Any, child: str) -> None:
    resp = get(app.test_client(), "dolma", f"/v1/projects/1/children/{child}")
    assert resp.status_code == 403


def test_overdue_follow_ups_by_region(app: Any, make_user: Any, child: str, phone_a: DigestClient) -> None:
    other = str(uuid.uuid4())
    post(phone_a, register_xml("uuid:r2", other, "Pasang", VILLAGE_A))
    post(phone_a, update_xml("uuid:u2", other, base=1, due="2999-01-01"))
    make_user("admin1", "admin")
    body = get(app.test_client(), "admin1", "/v1/projects/1/children/overdue").get_json()
    assert {r: [c["uuid"] for c in rows] for r, rows in body.items()} == {VILLAGE_A: [child]}
    listed = get(app.test_client(), "admin1", "/v1/projects/1/children?overdue=1").get_json()
    assert [c["uuid"] for c in listed["children"]] == [child]
    assert get(app.test_client(), "admin1", "/v1/projects/1/children?q=Pas").get_json()["total"] == 1


def test_sessions_and_basic_auth(app: Any, make_user: Any, rt: Any) -> None:
    make_user("mgr", "manager", ["540102"])
    client = app.test_client()
    assert client.post("/v1/sessions", json={"email": "mgr", "password": "wrong"}).status_code == 401
    assert client.get("/v1/projects/1/children").status_code == 401
    basic = "Basic " + base64.b64encode(f"mgr:{PASSWORD}".encode()).decode()
    resp = client.get("/v1/projects/1/children", headers={"Authorization": basic})
    assert resp.status_code == 401 and "HTTPS" in resp.get_json()["message"]
    resp = client.get("/v1/projects/1/children", headers={"Authorization": basic}, base_url="https://localhost")
    assert resp.status_code == 200
    tok = ApiClient(client.application, "mgr").token
    assert client.delete(f"/v1/sessions/{tok}", headers={"Authorization": f"Bearer {tok}"}).status_code == 200
    assert client.get("/v1/projects/1/children", headers={"Authorization": f"Bearer {tok}"}).status_code == 401


def test_record_attachment_is_region_scoped(app: Any, make_user: Any, submit: Any) -> None:
    from tests.app.submissions.test_submissions import PHOTO

    assert submit(files={"photo.jpg": PHOTO}).status_code == 201
    url = "/v1/projects/1/forms/household/submissions/uuid:00000000-0000-4000-8000-000000000001/attachments/photo.jpg"
    make_user("mgr", "manager", ["540102"])
    make_user("far", "manager", ["5402"])
    resp = get(app.test_client(), "mgr", url)
    assert resp.status_code == 200 and resp.data == PHOTO
    assert get(app.test_client(), "far", url).status_code == 404


def test_api_views_of_a_child_file_are_audited(app: Any, make_user: Any, child: str, rt: Any) -> None:
    from sqlalchemy import select

    from app.models import AuditEvent

    make_user("mgr", "manager", ["540102"])
    assert get(app.test_client(), "mgr", f"/v1/projects/1/children/{child}").status_code == 200
    with rt.db.session() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "child.view")).all()
    assert event.username == "mgr" and event.target == f"child:{child}" and event.details == {"via": "api", "unmasked": False}
