"""Central's 2025–2026 features (issue 20, build 2): publish notes on form versions."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.app.conftest import PASSWORD
from tests.app.api.test_central_odd_ids import sheet
from tests.app.forms.test_web_drafts import save_draft
from tests.app.forms.test_web_forms import signed_in
from tests.support.pyodk_app import pyodk_client
from tests.support.sample_forms import household_md

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXTENDED = {"X-Extended-Metadata": "true"}


@pytest.fixture
def odk(app: Any, make_user: Any, tmp_path: Path) -> Any:
    make_user("boss", "admin")
    return pyodk_client(app, tmp_path, "boss", PASSWORD)


def test_publish_notes_through_the_api(odk: Any, app: Any, make_user: Any, tmp_path: Path) -> None:
    odk.forms.create(definition=sheet(version="1"), form_id="clinic")
    odk.session.post("projects/1/forms/clinic/draft", data=sheet("Child's name", version="2"),
                     headers={"Content-Type": XLSX}, params={"ignoreWarnings": "true"})
    notes = "Asked for the child's full name; 名字"
    published = odk.session.post("projects/1/forms/clinic/draft/publish",
                                 headers={"X-Action-Notes": quote(notes)})
    assert published.status_code == 200, published.text
    versions = odk.session.get("projects/1/forms/clinic/versions", headers=EXTENDED).json()
    assert [(v["version"], v["publishNotes"]) for v in versions] == [("2", notes), ("1", None)]
    assert odk.session.get("projects/1/forms/clinic", headers=EXTENDED).json()["publishNotes"] == notes
    assert "publishNotes" not in odk.session.get("projects/1/forms/clinic/versions").json()[0]  # extended only
    # a JSON body works too; notes too long are refused with a message
    odk.session.post("projects/1/forms/clinic/draft", data=sheet("Name", version="3"),
                     headers={"Content-Type": XLSX}, params={"ignoreWarnings": "true"})
    long = odk.session.post("projects/1/forms/clinic/draft/publish", json={"publishNotes": "x" * 2001})
    assert long.status_code == 400 and long.json()["code"] == 400.85 and "2000" in long.json()["message"]
    assert odk.session.post("projects/1/forms/clinic/draft/publish",
                            json={"publishNotes": "Back to 'Name'"}).status_code == 200
    assert odk.session.get("projects/1/forms/clinic/versions/3", headers=EXTENDED).json()["publishNotes"] == \
        "Back to 'Name'"
    # as Central: only those who may change the form read the notes
    make_user("viewer", "manager", ["540102"])
    viewer = pyodk_client(app, tmp_path, "viewer", PASSWORD)
    assert "publishNotes" not in viewer.session.get("projects/1/forms/clinic/versions", headers=EXTENDED).json()[0]


def test_publish_notes_on_the_website(app: Any, make_user: Any, household: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    assert save_draft(b, household_md("2", "| | text | remark | Remark | | |")).status_code == 302
    assert 'name="notes"' in b.get("/forms/household/draft").get_data(as_text=True)
    done = b.post("/forms/household/draft/publish", {"version": "2", "notes": "Added a remark <b>"})
    assert done.status_code == 302
    detail = b.get("/forms/household").get_data(as_text=True)
    assert "Notes: Added a remark &lt;b&gt;" in detail  # escaped
    zh = signed_in(app, make_user, lang="zh", name="zhuser")
    assert "说明: Added a remark" in zh.get("/forms/household").get_data(as_text=True)


def _revalidate(odk: Any, path: str, tag: str) -> Any:
    return odk.session.get(path, headers={"If-None-Match": tag})


@pytest.mark.parametrize("path", ["projects/1/forms/household.svc/Submissions",
                                  "projects/1/forms/household.svc/Submissions.members",
                                  "projects/1/forms/household/submissions.csv",
                                  "projects/1/forms/household/submissions.csv.zip?attachments=false"])
def test_etags_on_csv_and_odata(odk: Any, submit: Any, app: Any, make_user: Any, tmp_path: Path, path: str) -> None:
    from tests.support.sample_forms import household_xml

    assert submit(household_xml("uuid:etag-1")).status_code == 201
    first = odk.session.get(path)
    tag = first.headers["ETag"]
    assert first.status_code == 200 and tag.startswith('"') and first.content
    again = _revalidate(odk, path, tag)
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == tag
    assert _revalidate(odk, path, f'"other", W/{tag}').status_code == 304
    # any change of the rows: a new record, a review, an edit → the whole answer again, with a new tag
    assert submit(household_xml("uuid:etag-2")).status_code == 201
    second = _revalidate(odk, path, tag)
    assert second.status_code == 200 and second.headers["ETag"] != tag
    tag = second.headers["ETag"]
    odk.submissions.review("uuid:etag-1", review_state="approved", form_id="household")
    third = _revalidate(odk, path, tag)
    assert third.status_code == 200 and third.headers["ETag"] != tag
    # another query or another reader is another answer
    assert odk.session.get(path + ("&" if "?" in path else "?") + "$top=1"
                           if ".svc" in path else path).headers["ETag"] != tag
    make_user("far", "manager", ["540121"])
    far = pyodk_client(app, tmp_path, "far", PASSWORD)
    assert _revalidate(far, path, third.headers["ETag"]).status_code == 200


def test_entity_filters_by_creator_and_creation_time_and_etag(odk: Any, app: Any, make_user: Any,
                                                             tmp_path: Path) -> None:
    from datetime import UTC, datetime

    odk.entity_lists.create(entity_list_name="households")
    odk.session.post("projects/1/datasets/households/properties", json={"name": "village"})
    boss = odk.session.get("users/current").json()["id"]
    odk.entities.create(label="House 1", data={"village": "540102002201"}, entity_list_name="households")
    between = datetime.now(UTC).isoformat()
    make_user("dawa", "coordinator", ["540102"])
    dawa = pyodk_client(app, tmp_path, "dawa", PASSWORD)
    dawa_id = dawa.session.get("users/current").json()["id"]
    dawa.entities.create(label="House 2", data={"village": "540102002202"}, entity_list_name="households")

    def labels(flt: str) -> list[str]:
        table = odk.entities.get_table(entity_list_name="households", filter=flt)
        return sorted(r["label"] for r in table["value"])

    assert labels(f"__system/creatorId eq {boss}") == ["House 1"]
    assert labels(f"__system/creatorId eq {dawa_id}") == ["House 2"]
    assert labels(f"__system/createdAt gt {between}") == ["House 2"]
    assert labels(f"__system/createdAt le {between} or __system/creatorId eq {dawa_id}") == ["House 1", "House 2"]
    # the entity feed has an ETag too: a new entity changes it
    path = "projects/1/datasets/households.svc/Entities"
    tag = odk.session.get(path).headers["ETag"]
    assert _revalidate(odk, path, tag).status_code == 304
    odk.entities.create(label="House 3", data={"village": "540102002201"}, entity_list_name="households")
    assert _revalidate(odk, path, tag).status_code == 200


def test_submissions_geojson_for_a_map(odk: Any, submit: Any, app: Any, make_user: Any, tmp_path: Path,
                                       publish: Any, collect: Any) -> None:
    from tests.support.sample_forms import household_xml

    assert submit(household_xml("uuid:geo-1")).status_code == 201
    assert submit(household_xml("uuid:geo-2").replace(b"29.65 91.13 3650 5", b"29.7 91.2 3600 4")).status_code == 201
    assert submit(household_xml("uuid:geo-3").replace(b"<location>29.65 91.13 3650 5</location>",
                                                       b"<location/>")).status_code == 201
    got = odk.session.get("projects/1/forms/household/submissions.geojson")
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/geo+json"
    body = got.json()
    assert body["type"] == "FeatureCollection"
    assert body["features"] == [  # newest first; the record without a location is left out
        {"type": "Feature", "id": "uuid:geo-2", "geometry": {"type": "Point", "coordinates": [91.2, 29.7, 3600.0]},
         "properties": {"fieldpath": "/location"}},
        {"type": "Feature", "id": "uuid:geo-1", "geometry": {"type": "Point", "coordinates": [91.13, 29.65, 3650.0]},
         "properties": {"fieldpath": "/location"}}]
    one = odk.session.get("projects/1/forms/household/submissions.geojson", params={"submissionID": "uuid:geo-1"})
    assert [f["id"] for f in one.json()["features"]] == ["uuid:geo-1"]
    assert len(odk.session.get("projects/1/forms/household/submissions.geojson",
                               params={"limit": "1"}).json()["features"]) == 1
    everything = odk.session.get("projects/1/forms/household/submissions.geojson", params={"fieldpath": "all"}).json()
    assert everything["features"][0]["geometry"]["type"] == "GeometryCollection"
    assert everything["features"][0]["properties"] is None
    odk.submissions.review("uuid:geo-1", review_state="approved", form_id="household")
    approved = odk.session.get("projects/1/forms/household/submissions.geojson", params={"reviewState": "approved"})
    assert [f["id"] for f in approved.json()["features"]] == ["uuid:geo-1"]
    tag = approved.headers["ETag"]
    assert odk.session.get("projects/1/forms/household/submissions.geojson?reviewState=approved",
                           headers={"If-None-Match": tag}).status_code == 304
    for bad in ({"fieldpath": "/nothing"}, {"reviewState": "maybe"}, {"start__gt": "yesterday"}, {"x": "1"}):
        resp = odk.session.get("projects/1/forms/household/submissions.geojson", params=bad)
        assert resp.status_code == 400, bad
    # scoped like every export: a manager of another county sees none of these
    make_user("far", "manager", ["540121"])
    far = pyodk_client(app, tmp_path, "far", PASSWORD)
    assert far.session.get("projects/1/forms/household/submissions.geojson").json()["features"] == []


def test_geojson_leaves_out_sensitive_locations(app: Any, make_user: Any, tmp_path: Path, publish: Any,
                                                collect: Any) -> None:
    from tests.app.conftest import submission_body
    from tests.support.sample_forms import household_md, household_xml

    sensitive = household_md("2").replace(
        "| survey |\n| | type | name | label | required | relevant |",
        "| survey |\n| | type | name | label | required | relevant | bind::carefile:sensitive |").replace(
        "| | geopoint | location | Location | | |", "| | geopoint | location | Location | | | yes |")
    publish(sensitive)
    sent = collect.post("/v1/projects/1/submission", data=submission_body(household_xml("uuid:home", version="2")),
                        content_type="multipart/form-data")
    assert sent.status_code == 201
    make_user("mgr", "manager", ["540102"])
    make_user("coord", "coordinator", ["540102"])
    mgr, coord = (pyodk_client(app, tmp_path, n, PASSWORD) for n in ("mgr", "coord"))
    assert mgr.session.get("projects/1/forms/household/submissions.geojson").json()["features"] == []
    assert [f["id"] for f in coord.session.get("projects/1/forms/household/submissions.geojson")
            .json()["features"]] == ["uuid:home"]


def test_geojson_on_the_website(app: Any, make_user: Any, submit: Any) -> None:
    from tests.app.web_helpers import Browser
    from tests.support.sample_forms import household_xml

    assert submit(household_xml("uuid:web-geo")).status_code == 201

    def browser(name: str, regions: list[str]) -> Browser:
        make_user(name, "manager", regions)
        b = Browser(app)
        assert b.login(name).status_code == 302
        b.get("/")
        assert b.post("/language", {"lang": "en", "next": "/"}).status_code == 302
        return b

    near = browser("mgr", ["540102"])
    page = near.get("/exports").get_data(as_text=True)
    assert "Locations for a map" in page and 'href="/forms/household/submissions.geojson"' in page
    got = near.get("/forms/household/submissions.geojson")
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/geo+json"
    assert "household.geojson" in got.headers["Content-Disposition"]
    assert [f["id"] for f in got.get_json()["features"]] == ["uuid:web-geo"]
    assert near.get("/forms/household/submissions.geojson?oops=1").status_code == 400
    far = browser("far", ["540121"])  # another county: none of these
    assert far.get("/forms/household/submissions.geojson").get_json()["features"] == []


def test_children_list_filters_by_registrar_and_registration_day(app: Any, make_user: Any, publish: Any,
                                                                  rt: Any) -> None:
    """The website's children list (entity list) filtered as Central's entity $filter on creatorId and
    createdAt: who registered the child and when."""
    import uuid
    from datetime import UTC, datetime

    from sqlalchemy import update

    from app.models import Entity
    from tests.app.conftest import submission_body
    from tests.app.web_helpers import Browser
    from tests.support.digest_client import DigestClient
    from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml

    publish(UPDATE_MD, "followup.md")
    publish(REGISTER_MD, "register.md")
    make_user("dolma", "collector", ["540102"])
    make_user("pema", "collector", ["540102"])
    ids = {}
    for who, name in (("dolma", "Dolkar"), ("pema", "Norbu"), ("dolma", "Yangzom")):
        ids[name] = (who, str(uuid.uuid4()))
        phone = DigestClient(app.test_client(), who, PASSWORD)
        sent = phone.post("/v1/projects/1/submission", content_type="multipart/form-data",
                          data=submission_body(register_xml(f"uuid:reg-{name}", ids[name][1], name, "540102002201")))
        assert sent.status_code == 201, sent.data
    with rt.db.write() as s:  # Yangzom was registered in March
        s.execute(update(Entity).where(Entity.uuid == ids["Yangzom"][1])
                  .values(created_at=datetime(2026, 3, 2, 4, 0, tzinfo=UTC)))
    make_user("coord", "coordinator", ["540102"])
    b = Browser(app)
    assert b.login("coord").status_code == 302
    b.get("/")
    b.post("/language", {"lang": "en", "next": "/"})

    def names(query: str) -> set[str]:
        html = b.get(f"/children?{query}").get_data(as_text=True)
        return {n for n in ("Dolkar", "Norbu", "Yangzom") if n in html}

    assert names("") == {"Dolkar", "Norbu", "Yangzom"}
    assert names("registered_by=dolma") == {"Dolkar", "Yangzom"}
    assert names("registered_by=pema") == {"Norbu"}
    assert names("registered_by=nobody") == set()
    assert names("created_to=2026-03-31") == {"Yangzom"}
    assert names("created_from=2026-04-01&registered_by=dolma") == {"Dolkar"}
    assert 'name="registered_by" maxlength="100" value="dolma"' in b.get("/children?registered_by=dolma").get_data(
        as_text=True)
    assert b.get("/children?created_from=2026-13-45").status_code == 400


def test_geojson_of_the_trash(odk: Any, submit: Any) -> None:
    from tests.support.sample_forms import household_xml

    for iid in ("uuid:kept", "uuid:binned"):
        assert submit(household_xml(iid)).status_code == 201
    assert odk.session.delete("projects/1/forms/household/submissions/uuid:binned").status_code == 200
    path = "projects/1/forms/household/submissions.geojson"
    assert [f["id"] for f in odk.session.get(path).json()["features"]] == ["uuid:kept"]
    assert [f["id"] for f in odk.session.get(path, params={"deleted": "true"}).json()["features"]] == ["uuid:binned"]
    assert odk.session.get(path, params={"deleted": "maybe"}).status_code == 400


REPEAT_GEO_MD = """
| settings |
| | form_id | version |
| | geo_rep | 1 |

| survey |
| | type | name | label |
| | geopoint | home | Home |
| | begin repeat | plural | Places |
| | geopoint | spot | Spot |
| | geotrace | path | Path |
| | end repeat | | |
"""


def test_geojson_of_repeats_as_multi_geometries(odk: Any, publish: Any, collect: Any) -> None:
    from tests.app.conftest import submission_body

    publish(REPEAT_GEO_MD)
    xml = (b'<data id="geo_rep" version="1"><home>50 0 0 0</home>'
           b"<plural><spot>60 0 0 0</spot><path>61 1 1 0;62 2 2 0</path></plural>"
           b"<plural><spot>70 0 0 0</spot><path>71 1 1 0;72 2 2 0</path></plural>"
           b"<meta><instanceID>uuid:rep-1</instanceID></meta></data>")
    assert collect.post("/v1/projects/1/submission", data=submission_body(xml),
                        content_type="multipart/form-data").status_code == 201
    path = "projects/1/forms/geo_rep/submissions.geojson"
    (default,) = odk.session.get(path).json()["features"]
    assert default["geometry"] == {"type": "Point", "coordinates": [0.0, 50.0, 0.0]}
    assert default["properties"] == {"fieldpath": "/home"}
    (spots,) = odk.session.get(path, params={"fieldpath": "/plural/spot"}).json()["features"]
    assert spots["geometry"] == {"type": "MultiPoint", "coordinates": [[0.0, 60.0, 0.0], [0.0, 70.0, 0.0]]}
    (everything,) = odk.session.get(path, params={"fieldpath": "all"}).json()["features"]
    assert everything["properties"] is None
    assert [g["type"] for g in everything["geometry"]["geometries"]] == ["Point", "MultiPoint", "MultiLineString"]
    assert everything["geometry"]["geometries"][2]["coordinates"] == [
        [[1.0, 61.0, 1.0], [2.0, 62.0, 2.0]], [[1.0, 71.0, 1.0], [2.0, 72.0, 2.0]]]
    assert odk.session.get(path, params={"fieldpath": "/plural/nothing"}).status_code == 400
