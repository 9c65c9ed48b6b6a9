"""ODK Central-compatible REST and OData endpoints (what pyodk and BI tools call)."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.app.conftest import PASSWORD
from tests.support.api_client import ApiClient
from tests.support.sample_forms import household_xml


@pytest.fixture
def api(app: Any, make_user: Any) -> Any:
    make_user("analyst", "manager", ["540102"])
    return ApiClient(app, "analyst")


@pytest.fixture
def three(submit: Any) -> None:
    for i in range(3):
        xml = household_xml(f"uuid:sub-{i}", name=f"Child {i}", age=str(5 + i),
                            members=[("mother", "30"), ("brother", str(10 + i))])
        assert submit(xml).status_code == 201


def test_projects_forms_and_submissions(api: Any, three: Any) -> None:
    assert api.get("/v1/users/current").get_json()["email"] == "analyst"
    (project,) = api.get("/v1/projects").get_json()
    assert project["id"] == 1 and "createdAt" in project
    (form,) = api.get("/v1/projects/1/forms").get_json()
    assert form["xmlFormId"] == "household" and form["version"] == "1" and form["state"] == "open"
    for key in ("name", "enketoId", "keyId", "updatedAt", "publishedAt", "hash", "createdAt"):
        assert key in form
    subs = api.get("/v1/projects/1/forms/household/submissions").get_json()
    assert sorted(s["instanceId"] for s in subs) == ["uuid:sub-0", "uuid:sub-1", "uuid:sub-2"]
    one = api.get("/v1/projects/1/forms/household/submissions/uuid%3Asub-1").get_json()
    assert one["instanceId"] == "uuid:sub-1" and one["reviewState"] is None
    atts = api.get("/v1/projects/1/forms/household/submissions/uuid:sub-1/attachments").get_json()
    assert atts == [{"name": "photo.jpg", "exists": False}]


def test_odata_service_metadata_and_feed(api: Any, three: Any) -> None:
    svc = api.get("/v1/projects/1/forms/household.svc")
    assert svc.headers["OData-Version"] == "4.0"
    assert [v["name"] for v in svc.get_json()["value"]] == ["Submissions", "Submissions.members"]
    meta = api.get("/v1/projects/1/forms/household.svc/$metadata")
    assert b'<Property Name="age" Type="Edm.Int64"/>' in meta.data
    assert b'Type="Edm.GeographyPoint"' in meta.data
    feed = api.get("/v1/projects/1/forms/household.svc/Submissions?$count=true").get_json()
    assert feed["@odata.count"] == 3 and feed["@odata.context"].endswith("$metadata#Submissions")
    row = next(r for r in feed["value"] if r["__id"] == "uuid:sub-2")
    assert row["age"] == 7 and row["needs"] == "food health"
    assert row["location"] == {"type": "Point", "coordinates": [91.13, 29.65, 3650.0],
                               "properties": {"accuracy": 5.0}}
    assert row["meta"]["instanceID"] == "uuid:sub-2"
    assert row["members@odata.navigationLink"] == "Submissions('uuid%3Asub-2')/members"
    assert row["__system"]["attachmentsExpected"] == 1 and row["__system"]["attachmentsPresent"] == 0
    reps = api.get("/v1/projects/1/forms/household.svc/Submissions.members").get_json()["value"]
    assert len(reps) == 6
    assert {r["__Submissions-id"] for r in reps} == {"uuid:sub-0", "uuid:sub-1", "uuid:sub-2"}
    assert sorted(r["member_age"] for r in reps if r["member_role"] == "brother") == [10, 11, 12]


def test_odata_paging_with_next_link(api: Any, three: Any) -> None:
    seen: list[str] = []
    url = "/v1/projects/1/forms/household.svc/Submissions?$top=2"
    pages = 0
    while url:
        body = api.get(url).get_json()
        seen += [r["__id"] for r in body["value"]]
        nxt = body.get("@odata.nextLink")
        url = (urlsplit(nxt).path + "?" + urlsplit(nxt).query) if nxt else ""
        if nxt:
            assert "$skiptoken" in parse_qs(urlsplit(nxt).query)
        pages += 1
    assert pages == 2 and sorted(seen) == ["uuid:sub-0", "uuid:sub-1", "uuid:sub-2"]
    skipped = api.get("/v1/projects/1/forms/household.svc/Submissions?$skip=1&$top=1").get_json()["value"]
    assert len(skipped) == 1


def test_odata_filter_select_and_wkt(api: Any, three: Any) -> None:
    base = "/v1/projects/1/forms/household.svc/Submissions"
    assert len(api.get(base + "?$filter=__system/submissionDate gt 2000-01-01").get_json()["value"]) == 3
    assert api.get(base + "?$filter=__system/submissionDate lt 2000-01-01").get_json()["value"] == []
    assert len(api.get(base + "?$filter=__system/reviewState eq null and not (__id eq 'uuid:sub-0')")
               .get_json()["value"]) == 2
    assert len(api.get(base + "?$filter=year(__system/submissionDate) ge 2020").get_json()["value"]) == 3
    sel = api.get(base + "?$select=__id,age,meta/instanceID").get_json()["value"][0]
    assert set(sel) == {"__id", "age", "meta"} and set(sel["meta"]) == {"instanceID"}
    wkt = api.get(base + "?$wkt=true&$top=1").get_json()["value"][0]
    assert wkt["location"] == "POINT (91.13 29.65 3650.0)"
    assert api.get(base + "?foo=1").status_code == 501
    assert api.get(base + "?$filter=age gt 3").status_code == 200  # beyond Central: tests/app/api/test_odata_fields.py
    assert api.get(base + "?$filter=needs eq 'food'").status_code == 501  # a select-multiple is not filterable
    assert api.get(base + "?$filter=__id eq").status_code == 400


def test_odata_is_region_scoped(app: Any, make_user: Any, three: Any) -> None:
    make_user("far", "manager", ["5402"])
    client = app.test_client()
    token = client.post("/v1/sessions", json={"email": "far", "password": PASSWORD}).get_json()["token"]
    body = client.get("/v1/projects/1/forms/household.svc/Submissions?$count=true",
                      headers={"Authorization": f"Bearer {token}"}).get_json()
    assert body["value"] == [] and body["@odata.count"] == 0
    assert client.get("/v1/projects/1/forms/household/submissions/uuid:sub-0",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 404
