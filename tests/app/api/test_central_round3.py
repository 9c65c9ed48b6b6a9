"""Issue 20, items 2, 4, 6, 7, 8, 10 and 12: what pyodk and Central's own test data found different,
through pyodk's public API (its own Client, its requests going into the app) or the request that showed it."""
from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyodk.errors import PyODKError
from sqlalchemy import insert, select, update

from tests.app.conftest import PASSWORD
from tests.app.api.test_central_odd_ids import sheet
from tests.support.pyodk_app import pyodk_client
from tests.support.sample_forms import household_xml


@pytest.fixture
def odk(app: Any, make_user: Any, tmp_path: Path) -> Any:
    make_user("boss", "admin")
    return pyodk_client(app, tmp_path, "boss", PASSWORD)


def test_entity_list_names_follow_central(odk: Any) -> None:
    # item 2: `:` is allowed, `.` is not (Central's lib/data/dataset.js)
    assert odk.entity_lists.create(entity_list_name="trees:2026").name == "trees:2026"
    assert "trees:2026" in [e.name for e in odk.entity_lists.list()]
    for bad in ("trees.2026", "__trees", "2026trees"):
        with pytest.raises(PyODKError) as err:
            odk.entity_lists.create(entity_list_name=bad)
        assert err.value.is_central_error(400.8), bad
    resp = odk.session.post("projects/1/datasets/trees:2026/properties", json={"name": "height.m"})
    assert resp.status_code == 200  # a property may hold `.`, not `:`
    assert odk.session.post("projects/1/datasets/trees:2026/properties", json={"name": "a:b"}).status_code == 400


def test_rest_create_with_a_known_instance_id_is_409_3(odk: Any, household: Any) -> None:
    # item 4: the same instanceID with other content through the REST API is Central's 409.3
    first = household_xml("uuid:r3-dup", name="Dawa").decode()
    assert odk.submissions.create(xml=first, form_id="household").instanceId == "uuid:r3-dup"
    for again in (first, household_xml("uuid:r3-dup", name="Someone else").decode()):
        with pytest.raises(PyODKError) as err:
            odk.submissions.create(xml=again, form_id="household")
        assert err.value.is_central_error("409.3")


def test_current_version_names_submitter_device_and_app(odk: Any, submit: Any, collector: Any) -> None:
    # item 6: currentVersion as Central's SubmissionDef (submitterId is required by its API description)
    sent = submit(household_xml("uuid:r3-cv"), uri="/v1/projects/1/submission?deviceID=collect:r3device0000001",
                  headers={"User-Agent": "org.odk.collect.android/v2026.1.0"})
    assert sent.status_code == 201
    body = odk.session.get("projects/1/forms/household/submissions/uuid:r3-cv").json()
    assert body["currentVersion"]["submitterId"] == collector.id == body["submitterId"]
    assert body["currentVersion"]["deviceId"] == "collect:r3device0000001"
    assert body["currentVersion"]["userAgent"] == "org.odk.collect.android/v2026.1.0"
    listed = odk.session.get("projects/1/forms/household/submissions").json()
    assert listed[0]["currentVersion"]["submitterId"] == collector.id


def test_empty_expand_is_ignored(odk: Any, submit: Any) -> None:
    # item 7: pyodk sends `$expand=` when asked for an empty expand; Central ignores it
    assert submit(household_xml("uuid:r3-exp")).status_code == 201
    table = odk.submissions.get_table(form_id="household", expand="")
    assert [r["__id"] for r in table["value"]] == ["uuid:r3-exp"]
    with pytest.raises(PyODKError) as err:
        odk.submissions.get_table(form_id="household", expand="members")
    assert err.value.is_central_error("501.6")


def test_csv_keeps_geopoint_pieces_as_submitted(odk: Any, submit: Any) -> None:
    # item 8: Central writes each piece of a geopoint as ODK sent it
    xml = household_xml("uuid:r3-geo").replace(b"29.65 91.13 3650 5", b"36.9991940 -121.333626 12 5.50")
    assert submit(xml).status_code == 201
    text = odk.session.get("projects/1/forms/household/submissions.csv").content.decode("utf-8-sig")
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert [row[f"location-{p}"] for p in ("Latitude", "Longitude", "Altitude", "Accuracy")] == \
        ["36.9991940", "-121.333626", "12", "5.50"]
    # OData keeps Central's GeoJSON: numbers and the accuracy, not the text
    (odata,) = odk.submissions.get_table(form_id="household")["value"]
    assert odata["location"] == {"type": "Point", "coordinates": [-121.333626, 36.999194, 12.0],
                                 "properties": {"accuracy": 5.5}}


def test_current_xlsform_download(odk: Any) -> None:
    # item 10: GET …/forms/{xmlFormId}.xlsx is the current version's XLSForm, byte for byte
    first, second = sheet(), sheet("Child's name")
    odk.forms.create(definition=first, form_id="clinic")
    assert odk.session.get("projects/1/forms/clinic.xlsx").content == first
    odk.forms.update("clinic", definition=second)
    got = odk.session.get("projects/1/forms/clinic.xlsx")
    assert got.status_code == 200 and got.content == second
    assert got.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    assert odk.session.get("projects/1/forms/clinic.xls").status_code == 404  # not uploaded as .xls
    assert odk.session.get("projects/1/forms/nothing.xlsx").status_code == 404
    # and the draft's
    odk.session.post("projects/1/forms/clinic/draft", data=first,
                     headers={"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
                     params={"ignoreWarnings": "true"})
    assert odk.session.get("projects/1/forms/clinic/draft.xlsx").content == first


def _bulk(rt: Any, n: int) -> None:
    """n submissions of the household form straight into the tables (a county's worth)."""
    from app.models import Form, Submission, SubmissionVersion

    with rt.db.write() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == "household"))
        now = datetime.now(UTC)
        subs, vers = [], []
        for i in range(n):
            iid = f"uuid:{uuid.UUID(int=i + 1)}"
            subs.append({"id": 100_000 + i, "form_id": form.id, "instance_id": iid, "created_at": now,
                         "updated_at": now, "region_code": "540102002201", "review_state": "received"})
            vers.append({"id": 100_000 + i, "submission_id": 100_000 + i, "form_id": form.id,
                         "form_version_id": form.current_version_id, "instance_id": iid, "current": True,
                         "xml": b"<data/>", "xml_sha256": "0" * 64, "received_at": now,
                         "data": {"child_name": f"child {i}", "age": i % 17, "village": "540102002201"}})
        s.execute(insert(Submission), subs)
        s.execute(insert(SubmissionVersion), vers)
        s.execute(update(Submission), [{"id": v["id"], "current_version_id": v["id"]} for v in vers])


def test_direct_csv_zip_streams_any_size(odk: Any, rt: Any, household: Any) -> None:
    # item 12: more than 20,000 submissions stream as Central streams them (centralpy's pullcsv)
    _bulk(rt, 20_001)
    got = odk.session.get("projects/1/forms/household/submissions.csv.zip", params={"attachments": "false"})
    assert got.status_code == 200, got.text[:300]
    with zipfile.ZipFile(io.BytesIO(got.content)) as zf, zf.open("household.csv") as f:
        rows = list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig")))
    assert len(rows) == 20_001 and {r["child_name"] for r in rows[:2]} <= {f"child {i}" for i in range(20_001)}


def _plain(instance_id: str, meta_prefix: str = "orx:") -> bytes:
    """A household record as Central's test data has them: `orx:` used without being declared."""
    m = meta_prefix
    return (f'<?xml version="1.0"?><data id="household" version="1"><child_name>Lhamo &amp; Pema</child_name>'
            f"<age>6</age><village>540102002201</village><{m}meta><{m}instanceID>{instance_id}"
            f"</{m}instanceID></{m}meta></data>").encode()


def test_lenient_xml_as_central(odk: Any, submit: Any) -> None:
    # item 11: undeclared `orx:` (10 of Central's 40 test submissions) and a bare `&`, read back byte for byte
    orx = _plain("uuid:r3-orx")
    assert submit(orx).status_code == 201
    amp = _plain("uuid:r3-a&b", meta_prefix="").replace(b"Lhamo &amp; Pema", b"Lhamo & Pema")
    assert submit(amp).status_code == 201
    assert odk.session.get("projects/1/forms/household/submissions/uuid:r3-orx.xml").content == orx
    assert odk.session.get("projects/1/forms/household/submissions/uuid:r3-a%26b.xml").content == amp
    rows = {r["__id"]: r for r in odk.submissions.get_table(form_id="household")["value"]}
    assert rows["uuid:r3-a&b"]["child_name"] == "Lhamo & Pema" == rows["uuid:r3-orx"]["child_name"]
    # the parser's defences stay: no DOCTYPE (so no entity is ever defined), nothing cut off or unbalanced
    for bad in (b'<!DOCTYPE d [<!ENTITY x "y">]>' + orx.split(b"?>", 1)[1], orx[:-20],
                orx.replace(b"<age>6</age>", b"<age>6</agex>")):
        assert submit(bad.replace(b"uuid:r3-orx", b"uuid:r3-bad")).status_code == 400
    # a form with a bare `&` in a label is taken as Central takes it
    form = (b'<?xml version="1.0"?><h:html xmlns="http://www.w3.org/2002/xforms" '
            b'xmlns:h="http://www.w3.org/1999/xhtml"><h:head><h:title>Food & water</h:title><model>'
            b'<instance><data id="food_water" version="1"><q/><meta><instanceID/></meta></data></instance>'
            b'<bind nodeset="/data/q" type="string"/><bind nodeset="/data/meta/instanceID" type="string" '
            b'readonly="true()" jqr:preload="uid" xmlns:jqr="http://openrosa.org/javarosa"/></model></h:head>'
            b'<h:body><input ref="/data/q"><label>Food & water?</label></input></h:body></h:html>')
    assert odk.forms.create(definition=form.decode()).xmlFormId == "food_water"
    assert odk.forms.get("food_water").name == "Food & water"
