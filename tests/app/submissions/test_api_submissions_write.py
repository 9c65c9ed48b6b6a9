"""Central's REST writes on submissions: create, attachment upload, edit (400.19 / 409.9), review, comments,
versions, audits — through the same ingest path as ODK Collect, with roles and regions."""
from __future__ import annotations

from typing import Any

import pytest

from tests.support.api_client import ApiClient
from tests.support.sample_forms import household_xml

BASE = "/v1/projects/1/forms/household/submissions"


@pytest.fixture
def coord(login: Any, household: Any) -> ApiClient:
    return login("dawa", "coordinator", ["540102"])


def test_create_upload_get_and_xml(coord: ApiClient, rt: Any) -> None:
    xml = household_xml("uuid:rest-1", name="Pasang")
    resp = coord.post(BASE, data=xml, content_type="application/xml", query_string={"deviceID": "script:1"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["instanceId"] == "uuid:rest-1" and body["deviceId"] == "script:1" and body["reviewState"] is None
    # the XML refers to photo.jpg: a slot exists, not yet filled
    assert coord.get(f"{BASE}/uuid:rest-1/attachments").get_json() == [{"name": "photo.jpg", "exists": False}]
    up = coord.post(f"{BASE}/uuid%3Arest-1/attachments/photo.jpg", data=b"\xff\xd8jpeg-bytes",
                    content_type="image/jpeg")
    assert up.status_code == 200 and up.get_json() == {"success": True}
    assert coord.get(f"{BASE}/uuid:rest-1/attachments").get_json() == [{"name": "photo.jpg", "exists": True}]
    got = coord.get(f"{BASE}/uuid:rest-1/attachments/photo.jpg")
    assert got.status_code == 200 and got.data == b"\xff\xd8jpeg-bytes"
    # a file the XML does not name is refused
    other = coord.post(f"{BASE}/uuid:rest-1/attachments/other.jpg", data=b"x", content_type="image/jpeg")
    assert other.status_code == 404 and "photo.jpg" in other.get_json()["message"]
    assert coord.get(f"{BASE}/uuid:rest-1.xml").data == xml
    # the same ingest path as Collect: the typed values are there for OData
    row = coord.get("/v1/projects/1/forms/household.svc/Submissions").get_json()["value"][0]
    assert row["child_name"] == "Pasang" and row["__system"]["attachmentsPresent"] == 1
    # a second POST of the same instanceID: 409.3 as Central
    again = coord.post(BASE, data=xml, content_type="application/xml")
    assert again.status_code == 409 and again.get_json()["code"] == 409.3


def test_create_refuses_bad_input_with_4xx(coord: ApiClient) -> None:
    bad = coord.post(BASE, data=b"<data id='household' version='1'><unclosed>", content_type="application/xml")
    assert bad.status_code == 400
    wrong = coord.post(BASE, data=household_xml("uuid:w", form_id="other"), content_type="application/xml")
    assert wrong.status_code == 400 and "other" in wrong.get_json()["message"]
    empty = coord.post(BASE, data=b"", content_type="application/xml")
    assert empty.status_code == 400
    unknown = coord.post("/v1/projects/1/forms/nope/submissions", data=household_xml("uuid:n"),
                         content_type="application/xml")
    assert unknown.status_code == 404


def test_edit_versions_review_comments_audits(coord: ApiClient) -> None:
    assert coord.post(BASE, data=household_xml("uuid:e-1"), content_type="application/xml").status_code == 200
    no_dep = coord.put(f"{BASE}/uuid:e-1", data=household_xml("uuid:e-2"), content_type="application/xml")
    assert no_dep.status_code == 400 and no_dep.get_json()["code"] == 400.19
    edit = coord.put(f"{BASE}/uuid:e-1", data=household_xml("uuid:e-2", age="12", deprecated_id="uuid:e-1"),
                     content_type="application/xml")
    assert edit.status_code == 200, edit.get_data(as_text=True)
    assert edit.get_json()["instanceId"] == "uuid:e-1" and edit.get_json()["reviewState"] == "edited"
    stale = coord.put(f"{BASE}/uuid:e-1", data=household_xml("uuid:e-3", deprecated_id="uuid:e-1"),
                      content_type="application/xml")
    assert stale.status_code == 409 and stale.get_json()["code"] == 409.9
    versions = coord.get(f"{BASE}/uuid:e-1/versions").get_json()
    assert [v["instanceId"] for v in versions] == ["uuid:e-2", "uuid:e-1"] and versions[0]["current"] is True
    assert b"<age>12</age>" in coord.get(f"{BASE}/uuid:e-1.xml").data
    assert b"<age>9</age>" in coord.get(f"{BASE}/uuid:e-1/versions/uuid:e-1.xml").data

    review = coord.patch(f"{BASE}/uuid:e-1", json={"reviewState": "hasIssues"})
    assert review.status_code == 200 and review.get_json()["reviewState"] == "hasIssues"
    assert coord.patch(f"{BASE}/uuid:e-1", json={"reviewState": "bogus"}).status_code == 400
    added = coord.post(f"{BASE}/uuid:e-1/comments", json={"body": "照片不清楚 photo unclear"})
    assert added.status_code == 200 and added.get_json()["body"] == "照片不清楚 photo unclear"
    comments = coord.get(f"{BASE}/uuid:e-1/comments").get_json()
    assert [c["body"] for c in comments] == ["照片不清楚 photo unclear"] and isinstance(comments[0]["actorId"], int)
    actions = [a["action"] for a in coord.get(f"{BASE}/uuid:e-1/audits").get_json()]
    assert actions[-1] == "submission.create" and "submission.update" in actions and "submission.review" in actions


def test_regions_and_roles(coord: ApiClient, login: Any) -> None:
    far = household_xml("uuid:far", village="540121100201")
    boss = login("boss", "admin")
    assert boss.post(BASE, data=far, content_type="application/xml").status_code == 200
    # outside the coordinator's regions: as if it did not exist
    assert coord.get(f"{BASE}/uuid:far.xml").status_code == 404
    assert coord.patch(f"{BASE}/uuid:far", json={"reviewState": "approved"}).status_code == 404
    assert coord.put(f"{BASE}/uuid:far", data=household_xml("uuid:far-2", deprecated_id="uuid:far",
                                                            village="540102002201"),
                     content_type="application/xml").status_code == 404
    assert coord.post(f"{BASE}/uuid:far/comments", json={"body": "x"}).status_code == 404
    # a coordinator cannot write a record for another region, nor move one there by an edit
    outside = coord.post(BASE, data=household_xml("uuid:far-c", village="540121100201"), content_type="application/xml")
    assert outside.status_code == 403 and "540121100201" in outside.get_json()["message"]
    assert coord.post(BASE, data=household_xml("uuid:near"), content_type="application/xml").status_code == 200
    moved = coord.put(f"{BASE}/uuid:near", data=household_xml("uuid:near-2", deprecated_id="uuid:near",
                                                              village="540121100201"), content_type="application/xml")
    assert moved.status_code == 403
    manager = login("mgr", "manager", ["540102"])
    refused = manager.post(BASE, data=household_xml("uuid:m-1"), content_type="application/xml")
    assert refused.status_code == 403
    assert manager.post(f"{BASE}/uuid:far/comments", json={"body": "x"}).status_code == 404


def test_central_csv_conventions(coord: ApiClient) -> None:
    import csv
    import io
    import zipfile

    for iid in ("uuid:c-1", "uuid:c-2"):
        assert coord.post(BASE, data=household_xml(iid), content_type="application/xml").status_code == 200
    assert coord.patch(f"{BASE}/uuid:c-1", json={"reviewState": "hasIssues"}).status_code == 200
    resp = coord.get("/v1/projects/1/forms/household/submissions.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv" and resp.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(resp.data.decode("utf-8-sig"))))
    assert [r["KEY"] for r in rows] == ["uuid:c-2", "uuid:c-1"]  # newest first
    assert [r["ReviewState"] for r in rows] == ["", "hasIssues"]  # received: empty, as Central
    filtered = coord.get("/v1/projects/1/forms/household/submissions.csv.zip",
                         query_string={"$filter": "__system/reviewState eq 'hasIssues'", "attachments": "false"})
    with zipfile.ZipFile(io.BytesIO(filtered.data)) as zf:
        main = list(csv.DictReader(io.StringIO(zf.read("household.csv").decode("utf-8-sig"))))
    assert [r["KEY"] for r in main] == ["uuid:c-1"]
    bad = coord.get("/v1/projects/1/forms/household/submissions.csv.zip", query_string={"$filter": "nonsense eq"})
    assert bad.status_code in (400, 501)


GEO_MD = """
| settings |
| | form_id | version |
| | walk | 1 |

| survey |
| | type | name | label |
| | geotrace | path | Path |
| | geoshape | field | Field |
"""


def test_geotrace_and_geoshape_as_submitted_in_csv_and_geojson_in_odata(login: Any, publish: Any) -> None:
    import csv
    import io

    publish(GEO_MD, "walk.md")
    coord = login("boss", "admin")  # the form has no region question: only an admin sees its rows
    trace, shape = "29.65 91.13 3650 5;29.66 91.14 3651 4.5", "1 2 0 0;3 4 0 0;5 6 0 0;1 2 0 0"
    xml = (f'<data id="walk" version="1"><path>{trace}</path><field>{shape}</field>'
           "<meta><instanceID>uuid:walk-1</instanceID></meta></data>").encode()
    made = coord.post("/v1/projects/1/forms/walk/submissions", data=xml, content_type="application/xml")
    assert made.status_code == 200
    rows = list(csv.DictReader(io.StringIO(coord.get("/v1/projects/1/forms/walk/submissions.csv")
                                           .data.decode("utf-8-sig"))))
    assert rows[0]["path"] == trace and rows[0]["field"] == shape  # accuracy and formatting kept
    row = coord.get("/v1/projects/1/forms/walk.svc/Submissions").get_json()["value"][0]
    assert row["path"] == {"type": "LineString", "coordinates": [[91.13, 29.65, 3650.0], [91.14, 29.66, 3651.0]]}
    assert row["field"]["type"] == "Polygon" and "properties" not in row["field"]


def test_deleted_fields_only_when_asked(login: Any, publish: Any) -> None:
    import csv
    import io

    from tests.support.sample_forms import household_md

    publish(household_md("1", extra="| | text | old_note | Old note | | |"))
    publish(household_md("2"))  # version 2 drops old_note
    admin = login("boss", "admin")
    xml = household_xml("uuid:d-1").replace(b"<meta>", b"<old_note>kept</old_note><meta>")
    assert admin.post(BASE, data=xml, content_type="application/xml").status_code == 200

    def header(query: str) -> list[str]:
        data = admin.get(f"/v1/projects/1/forms/household/submissions.csv{query}").data.decode("utf-8-sig")
        return next(csv.reader(io.StringIO(data)))

    assert "old_note" not in header("")  # Central's default
    assert "old_note" in header("?deletedFields=true")


def test_collector_creates_through_the_api_and_sees_only_their_own(login: Any, household: Any) -> None:
    norbu = login("norbu", "collector", ["540102"])
    made = norbu.post(BASE, data=household_xml("uuid:col-1"), content_type="application/xml")
    assert made.status_code == 200 and isinstance(made.get_json()["submitterId"], int)
    up = norbu.post(f"{BASE}/uuid:col-1/attachments/photo.jpg", data=b"jpeg", content_type="image/jpeg")
    assert up.status_code == 200
    # pyodk lists the attachments after creating: a collector may, for their own submission
    assert norbu.get(f"{BASE}/uuid:col-1/attachments").get_json() == [{"name": "photo.jpg", "exists": True}]
    other = login("dawa2", "coordinator", ["540102"])
    assert other.post(BASE, data=household_xml("uuid:co-1"), content_type="application/xml").status_code == 200
    assert norbu.get(f"{BASE}/uuid:co-1/attachments").status_code == 404
    assert norbu.post(f"{BASE}/uuid:co-1/attachments/photo.jpg", data=b"x").status_code == 404
    assert norbu.get(f"{BASE}/uuid:col-1").status_code == 403  # reading submissions is for readers
