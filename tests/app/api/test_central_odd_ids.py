"""Issue 20, items 1, 3 and 5: form ids with odd characters and forms without a version, used through
pyodk's public API (its own Client, its requests going into the app) and ODK Collect's requests."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import quote

import openpyxl
import pytest
from pyodk.errors import PyODKError

from tests.app.conftest import PASSWORD, submission_body
from tests.support.digest_client import DigestClient
from tests.support.pyodk_app import pyodk_client

ODD = "=+/*-451%/%"  # the form id pyodk's own tests use


def sheet(label: str = "Name", version: str | None = None) -> bytes:
    """An XLSForm without form_id: the form id comes from X-XlsForm-FormId-Fallback."""
    wb = openpyxl.Workbook()
    survey = wb.active
    survey.title = "survey"
    for row in (["type", "name", "label"], ["text", "child", label], ["integer", "age", "Age"]):
        survey.append(row)
    if version is not None:
        settings = wb.create_sheet("settings")
        settings.append(["version"])
        settings.append([version])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def record(form_id: str, instance_id: str, version: str | None = None, name: str = "Pema") -> str:
    attr = f' version="{version}"' if version is not None else ""
    fid = form_id.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (f'<data id="{fid}"{attr}><child>{name}</child><age>7</age>'
            f"<meta><instanceID>{instance_id}</instanceID></meta></data>")


@pytest.fixture
def odk(app: Any, make_user: Any, tmp_path: Path) -> Any:
    make_user("boss", "admin")
    return pyodk_client(app, tmp_path, "boss", PASSWORD)


def test_form_id_with_slashes_works_on_every_route(odk: Any, app: Any, make_user: Any) -> None:
    made = odk.forms.create(definition=sheet(), form_id=ODD)  # draft, then publish: two routes of the form
    assert made.xmlFormId == ODD
    assert odk.forms.get(ODD).xmlFormId == ODD
    assert f'id="{ODD}"' in odk.forms.get_xml(ODD)
    sub = odk.submissions.create(xml=record(ODD, "uuid:odd-1"), form_id=ODD)
    assert sub.instanceId == "uuid:odd-1"
    assert [s.instanceId for s in odk.submissions.list(form_id=ODD)] == ["uuid:odd-1"]
    assert odk.submissions.get("uuid:odd-1", form_id=ODD).instanceId == "uuid:odd-1"
    table = odk.submissions.get_table(form_id=ODD)
    assert [r["child"] for r in table["value"]] == ["Pema"]
    assert table["@odata.context"].endswith("/forms/%3D%2B%2F*-451%25%2F%25.svc/$metadata#Submissions")
    odk.forms.update(ODD, definition=sheet("Child's name"))
    assert len(odk.session.get(f"projects/1/forms/{quote(ODD, safe='')}/versions").json()) == 2
    # ODK Collect: the form list's links carry %2F, and every one of them works with Digest
    make_user("tashi", "collector", ["540102"])
    phone = DigestClient(app.test_client(), "tashi", PASSWORD)
    listing = phone.get("/v1/projects/1/formList", headers={"X-OpenRosa-Version": "1.0"})
    assert listing.status_code == 200
    link = f"/v1/projects/1/forms/{quote(ODD, safe='')}.xml"
    assert f"http://localhost{link}" in listing.get_data(as_text=True)
    form_xml = phone.get(link)
    assert form_xml.status_code == 200 and f'id="{ODD}"'.encode() in form_xml.data


@pytest.mark.parametrize("form_id", ["uuid:r3-form", "✅"])
def test_form_id_fallback_is_kept_as_pyxform_keeps_it(odk: Any, form_id: str) -> None:
    made = odk.forms.create(definition=sheet(), form_id=form_id)
    assert made.xmlFormId == form_id
    assert odk.forms.get(form_id).xmlFormId == form_id
    assert f'id="{form_id}"' in odk.forms.get_xml(form_id)


def test_fallback_with_control_characters_is_refused(odk: Any) -> None:
    resp = odk.session.post("projects/1/forms", data=sheet(), params={"ignoreWarnings": "true"},
                            headers={"Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml"
                                     ".sheet", "X-XlsForm-FormId-Fallback": "bad%00id"})
    assert resp.status_code == 400 and resp.json()["code"] == 400.8


def test_form_without_version_keeps_the_empty_version(odk: Any, app: Any, make_user: Any) -> None:
    odk.forms.create(definition=sheet(), form_id="daily")
    form = odk.forms.get("daily")
    assert form.version == ""
    assert ' version="' not in odk.forms.get_xml("daily").split("<data", 1)[1].split(">", 1)[0]
    # a submission without a version attribute belongs to it, through the API and from a phone
    assert odk.submissions.create(xml=record("daily", "uuid:nov-1"), form_id="daily").instanceId == "uuid:nov-1"
    make_user("tashi", "collector", ["540102"])
    phone = DigestClient(app.test_client(), "tashi", PASSWORD)
    sent = phone.post("/v1/projects/1/submission", data=submission_body(record("daily", "uuid:nov-2").encode()),
                      content_type="multipart/form-data",
                      headers={"X-OpenRosa-Version": "1.0"})
    assert sent.status_code == 201, sent.get_data(as_text=True)
    versions = odk.session.get("projects/1/forms/daily/versions").json()
    assert [v["version"] for v in versions] == [""]
    assert odk.session.get("projects/1/forms/daily/versions/___").json()["version"] == ""
    # a changed form without a version cannot reuse the empty one: it gets a version phones can tell apart
    odk.forms.update("daily", definition=sheet("Child's name"))
    assert odk.forms.get("daily").version not in ("", None)


def test_form_id_ending_like_a_file_is_refused(odk: Any) -> None:
    # as Central: `…/forms/report.xml` is the form's XForm, so no form may be called that
    with pytest.raises(PyODKError) as err:
        odk.forms.create(definition=sheet(), form_id="report.xml")
    assert err.value.is_central_error("400.8") and "report.xml" in str(err.value)
