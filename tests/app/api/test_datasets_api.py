"""Entity lists (datasets) over Central's REST and OData shapes: what pyodk's entity calls read."""
from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.app.conftest import PASSWORD, submission_body
from tests.support.api_client import ApiClient
from tests.support.digest_client import DigestClient
from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml, update_xml

VILLAGE_A = "540102002201"  # county 540102
VILLAGE_B = "540121100201"  # county 540121
UA = "org.odk.collect.android/v2024.2.0"


def post(phone: DigestClient, xml: bytes) -> None:
    resp = phone.post("/v1/projects/1/submission", data=submission_body(xml), content_type="multipart/form-data",
                      headers={"User-Agent": UA})
    assert resp.status_code == 201, resp.data


Api = ApiClient


@pytest.fixture
def children(app: Any, make_user: Any, publish: Any) -> dict[str, str]:
    """Three children in county 540102 (one updated twice) and one in county 540121."""
    publish(UPDATE_MD, "followup.md")
    publish(REGISTER_MD, "register.md")
    make_user("dolma", "collector", ["540102"])
    make_user("pema", "collector", ["540121"])
    phone_a = DigestClient(app.test_client(), "dolma", PASSWORD)
    phone_b = DigestClient(app.test_client(), "pema", PASSWORD)
    ids = {name: str(uuid.uuid4()) for name in ("Dolkar", "Norbu", "Yangzom", "Tenzin")}
    for i, name in enumerate(("Dolkar", "Norbu", "Yangzom")):
        post(phone_a, register_xml(f"uuid:r{i}", ids[name], name, VILLAGE_A))
    post(phone_b, register_xml("uuid:rb", ids["Tenzin"], "Tenzin", VILLAGE_B))
    post(phone_a, update_xml("uuid:u1", ids["Dolkar"], base=1, status="watch"))
    post(phone_a, update_xml("uuid:u2", ids["Dolkar"], base=2, note="slept badly"))
    return ids


@pytest.fixture
def admin(app: Any, make_user: Any) -> Api:
    make_user("boss", "admin")
    return Api(app, "boss")


@pytest.fixture
def manager(app: Any, make_user: Any) -> Api:
    make_user("analyst", "manager", ["540102"])
    return Api(app, "analyst")


@pytest.fixture
def far(app: Any, make_user: Any) -> Api:
    make_user("far", "manager", ["540121"])
    return Api(app, "far")


def test_dataset_list_and_detail(admin: Api, manager: Api, children: dict[str, str]) -> None:
    (ds,) = admin.get("/v1/projects/1/datasets").get_json()
    assert ds["name"] == "children" and ds["projectId"] == 1 and ds["approvalRequired"] is False
    assert ds["entities"] == 4 and ds["createdAt"] and ds["lastEntity"]
    assert manager.get("/v1/projects/1/datasets").get_json()[0]["entities"] == 3
    detail = admin.get("/v1/projects/1/datasets/children").get_json()
    assert detail["name"] == "children" and detail["approvalRequired"] is False
    props = {p["name"]: p for p in detail["properties"]}
    assert set(props) == {"village", "status", "note", "next_followup_due"}
    assert props["status"]["forms"] == ["followup", "register"] and props["village"]["forms"] == ["register"]
    assert all(p["publishedAt"] and p["odataName"] == p["name"] for p in props.values())
    assert detail["sourceForms"] == [{"xmlFormId": "followup", "name": "followup"},
                                     {"xmlFormId": "register", "name": "register"}]
    assert [f["xmlFormId"] for f in detail["linkedForms"]] == ["followup"]
    assert admin.get("/v1/projects/1/datasets/nope").status_code == 404
    assert admin.get("/v1/projects/2/datasets").status_code == 404


def test_entities_in_central_shape(manager: Api, children: dict[str, str]) -> None:
    ents = manager.get("/v1/projects/1/datasets/children/entities").get_json()
    assert sorted(e["currentVersion"]["label"] for e in ents) == ["Dolkar", "Norbu", "Yangzom"]
    dolkar = next(e for e in ents if e["uuid"] == children["Dolkar"])
    for key in ("uuid", "creatorId", "createdAt", "updatedAt", "deletedAt", "conflict", "currentVersion"):
        assert key in dolkar
    cv = dolkar["currentVersion"]
    assert cv["current"] is True and cv["version"] == 3 and cv["baseVersion"] == 2
    assert cv["data"] == {"village": VILLAGE_A, "status": "watch", "note": "slept badly"}
    assert cv["userAgent"] == UA and isinstance(cv["creatorId"], int) and cv["conflictingProperties"] is None
    assert isinstance(dolkar["creatorId"], int) and dolkar["updatedAt"] and dolkar["conflict"] is None
    norbu = next(e for e in ents if e["uuid"] == children["Norbu"])
    assert norbu["updatedAt"] is None and norbu["currentVersion"]["baseVersion"] is None

    one = manager.get(f"/v1/projects/1/datasets/children/entities/{children['Dolkar']}").get_json()
    assert one == dolkar
    versions = manager.get(f"/v1/projects/1/datasets/children/entities/{children['Dolkar']}/versions").get_json()
    assert [(v["version"], v["current"], v["data"].get("status")) for v in versions] == [
        (1, False, "registered"), (2, False, "watch"), (3, True, "watch")]
    assert versions[2]["dataReceived"] == {"note": "slept badly"}
    assert versions[0]["source"]["submission"] == {"instanceId": "uuid:r0"}


def test_region_scoping(far: Api, admin: Api, children: dict[str, str]) -> None:
    ents = far.get("/v1/projects/1/datasets/children/entities").get_json()
    assert [e["uuid"] for e in ents] == [children["Tenzin"]]
    assert far.get(f"/v1/projects/1/datasets/children/entities/{children['Dolkar']}").status_code == 404
    assert far.get(f"/v1/projects/1/datasets/children/entities/{children['Dolkar']}/versions").status_code == 404
    feed = far.get("/v1/projects/1/datasets/children.svc/Entities?$count=true").get_json()
    assert feed["@odata.count"] == 1 and [r["__id"] for r in feed["value"]] == [children["Tenzin"]]
    assert len(admin.get("/v1/projects/1/datasets/children/entities").get_json()) == 4


def test_manager_of_other_county_sees_nothing(app: Any, make_user: Any, children: dict[str, str]) -> None:
    make_user("elsewhere", "manager", ["540202"])
    other = Api(app, "elsewhere")
    assert other.get("/v1/projects/1/datasets").get_json()[0]["entities"] == 0
    assert other.get("/v1/projects/1/datasets/children/entities").get_json() == []
    assert other.get(f"/v1/projects/1/datasets/children/entities/{children['Tenzin']}").status_code == 404
    body = other.get("/v1/projects/1/datasets/children.svc/Entities?$count=true").get_json()
    assert body["value"] == [] and body["@odata.count"] == 0


def test_collectors_and_strangers_are_refused(app: Any, children: dict[str, str]) -> None:
    client = app.test_client()
    assert client.get("/v1/projects/1/datasets").status_code == 401
    assert Api(app, "dolma").get("/v1/projects/1/datasets/children/entities").status_code == 403


def test_odata_service_metadata_and_rows(admin: Api, children: dict[str, str]) -> None:
    svc = admin.get("/v1/projects/1/datasets/children.svc")
    assert svc.headers["OData-Version"] == "4.0"
    assert svc.get_json()["value"] == [{"name": "Entities", "kind": "EntitySet", "url": "Entities"}]
    assert svc.get_json()["@odata.context"].endswith("/v1/projects/1/datasets/children.svc/$metadata")
    meta = admin.get("/v1/projects/1/datasets/children.svc/$metadata")
    assert meta.headers["Content-Type"].startswith("application/xml")
    assert b'<Property Name="next_followup_due" Type="Edm.String"/>' in meta.data
    assert b'<EntitySet Name="Entities" EntityType="org.opendatakit.user.children.Entities"/>' in meta.data
    feed = admin.get("/v1/projects/1/datasets/children.svc/Entities").get_json()
    assert feed["@odata.context"].endswith("children.svc/$metadata#Entities")
    assert "@odata.nextLink" not in feed and "@odata.count" not in feed
    row = next(r for r in feed["value"] if r["__id"] == children["Dolkar"])
    assert list(row)[:3] == ["__id", "label", "__system"]
    assert row["label"] == "Dolkar" and row["status"] == "watch" and row["next_followup_due"] == ""
    system = row["__system"]
    assert set(system) == {"createdAt", "creatorId", "creatorName", "updates", "updatedAt", "deletedAt",
                           "version", "conflict"}
    assert system["version"] == 3 and system["updates"] == 2 and system["creatorName"] == "dolma"
    assert isinstance(system["creatorId"], str) and system["updatedAt"] and system["conflict"] is None


def test_odata_paging_count_and_skip(admin: Api, children: dict[str, str]) -> None:
    base = "/v1/projects/1/datasets/children.svc/Entities"
    first = admin.get(base + "?$top=3&$count=True").get_json()
    assert len(first["value"]) == 3 and first["@odata.count"] == 4
    nxt = parse_qs(urlsplit(first["@odata.nextLink"]).query)
    assert nxt["$top"] == ["3"] and nxt["$count"] == ["True"]
    rows = admin.follow(base + "?$top=3")
    assert sorted(r["__id"] for r in rows) == sorted(children.values())
    assert len(admin.follow(base + "?$top=1")) == 4
    skipped = admin.get(base + "?$skip=1&$top=2").get_json()
    assert [r["__id"] for r in skipped["value"]] == [r["__id"] for r in rows[1:3]]


def test_odata_filter_and_select(admin: Api, children: dict[str, str]) -> None:
    base = "/v1/projects/1/datasets/children.svc/Entities"
    one = admin.get(base + f"?$filter=__id eq '{children['Norbu']}'").get_json()["value"]
    assert [r["label"] for r in one] == ["Norbu"]
    assert len(admin.get(base + "?$filter=__system/createdAt gt 2000-01-01").get_json()["value"]) == 4
    assert admin.get(base + "?$filter=__system/createdAt lt 2000-01-01").get_json()["value"] == []
    updated = admin.get(base + "?$filter=__system/updatedAt ne null").get_json()["value"]
    assert [r["__id"] for r in updated] == [children["Dolkar"]]
    assert len(admin.get(base + "?$filter=__system/updatedAt eq null").get_json()["value"]) == 3
    assert len(admin.get(base + "?$filter=__system/conflict eq null and year(__system/createdAt) ge 2020")
               .get_json()["value"]) == 4
    assert admin.get(base + "?$filter=__system/conflict eq 'hard'").get_json()["value"] == []
    sel = admin.get(base + "?$select=__id,label,__system/version").get_json()["value"][0]
    assert set(sel) == {"__id", "label", "__system"} and set(sel["__system"]) == {"version"}
    assert admin.get(base + "?$filter=status eq 'watch'").status_code == 501
    assert admin.get(base + "?$filter=__id eq").status_code == 400
    assert admin.get(base + "?foo=1").status_code == 501
    assert admin.get(base + "?$top=x").status_code == 400
    assert admin.get("/v1/projects/1/datasets/children.svc/Other").status_code == 404


def test_managers_may_not_write(manager: Api, children: dict[str, str]) -> None:
    """Writes are for admins and coordinators (tests/app/api/test_api_app_users_entities.py); a manager gets 403."""
    uid = children["Norbu"]
    calls = [("POST", "/v1/projects/1/datasets", {"name": "x"}),
             ("POST", "/v1/projects/1/datasets/children/properties", {"name": "p"}),
             ("POST", "/v1/projects/1/datasets/children/entities", {"label": "x", "data": {}}),
             ("PATCH", f"/v1/projects/1/datasets/children/entities/{uid}?force=True", {"label": "y"}),
             ("DELETE", f"/v1/projects/1/datasets/children/entities/{uid}", None)]
    for method, url, body in calls:
        resp = manager.send(method, url, json=body)
        assert resp.status_code == 403, (method, url)
        assert "coordinators" in resp.get_json()["message"]
    assert manager.get(f"/v1/projects/1/datasets/children/entities/{uid}").get_json()["currentVersion"]["label"] \
        == "Norbu"
