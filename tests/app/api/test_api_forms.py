"""Central's form API: create (publish or draft), the draft (token, files, publish with ?version=),
versions with their XForm and the XLSForm byte for byte, state changes, attachments; roles."""
from __future__ import annotations

import io
from typing import Any

import openpyxl
import pytest

from tests.support.api_client import ApiClient

FORMS = "/v1/projects/1/forms"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XQ: dict[str, Any] = {"content_type": XLSX, "query_string": {"ignoreWarnings": "true"}}


def xlsx(version: str | None, extra_label: str = "Name", form_id: str = "clinic") -> bytes:
    wb = openpyxl.Workbook()
    survey = wb.active
    survey.title = "survey"
    for row in (["type", "name", "label"], ["text", "child", extra_label], ["image", "pic", "Photo"],
                ["note", "hello", "jr://images/logo.png"]):
        survey.append(row)
    settings = wb.create_sheet("settings")
    settings.append(["form_id", "form_title"] + (["version"] if version else []))
    settings.append([form_id, "Clinic visit"] + ([version] if version else []))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@pytest.fixture
def coord(login: Any) -> ApiClient:
    return login("dawa", "coordinator", ["54"])  # forms reach every collector: a province's coordinator


def post_form(api: ApiClient, data: bytes, **query: str) -> Any:
    return api.post(FORMS, data=data, content_type=XLSX, query_string={"ignoreWarnings": "true", **query},
                    headers={"X-XlsForm-FormId-Fallback": "clinic"})


def test_create_as_draft_then_publish_with_files(coord: ApiClient, app: Any) -> None:
    original = xlsx("1")
    made = post_form(coord, original, publish="false", ignoreWarnings="true")
    assert made.status_code == 200, made.get_data(as_text=True)
    body = made.get_json()
    assert body["xmlFormId"] == "clinic" and body["version"] == "1" and body["publishedAt"] is None
    token = body["draftToken"]
    # not published: no phone and no form list sees it, but the draft is there with its test URL
    assert "clinic" not in [f["xmlFormId"] for f in coord.get(FORMS).get_json()]
    assert coord.get(f"{FORMS}/clinic").status_code == 404
    draft = coord.get(f"{FORMS}/clinic/draft").get_json()
    assert draft["draftToken"] == token and draft["hash"] == body["hash"]
    assert b'id="clinic"' in coord.get(f"{FORMS}/clinic/draft.xml").data
    test_url = f"/v1/test/{token}/projects/1/forms/clinic/draft"
    assert app.test_client().get(f"{test_url}/formList").status_code == 200
    # a second create of the same form id is Central's 409.3
    again = post_form(coord, original, publish="false", ignoreWarnings="true")
    assert again.status_code == 409 and again.get_json()["code"] == 409.3

    files = coord.get(f"{FORMS}/clinic/draft/attachments").get_json()
    assert [(f["name"], f["type"], f["exists"]) for f in files] == [("logo.png", "image", False)]
    up = coord.post(f"{FORMS}/clinic/draft/attachments/logo.png", data=b"\x89PNG logo", content_type="image/png")
    assert up.status_code == 200 and up.get_json() == {"success": True}
    assert coord.get(f"{FORMS}/clinic/draft/attachments").get_json()[0]["exists"] is True
    wrong = coord.post(f"{FORMS}/clinic/draft/attachments/other.png", data=b"x", content_type="image/png")
    assert wrong.status_code == 404 and "logo.png" in wrong.get_json()["message"]

    assert coord.post(f"{FORMS}/clinic/draft/publish").get_json() == {"success": True}
    form = coord.get(f"{FORMS}/clinic").get_json()
    assert form["version"] == "1" and form["publishedAt"] is not None
    assert coord.get(f"{FORMS}/clinic/draft").status_code == 404
    assert app.test_client().get(f"{test_url}/formList").status_code == 404  # the token died with the draft
    (att,) = coord.get(f"{FORMS}/clinic/attachments").get_json()
    assert att["name"] == "logo.png" and att["exists"] is True
    assert coord.get(f"{FORMS}/clinic/attachments/logo.png").data == b"\x89PNG logo"
    # the XLSForm as uploaded, byte for byte
    src = coord.get(f"{FORMS}/clinic/versions/1.xlsx")
    assert src.status_code == 200 and src.data == original
    assert coord.get(f"{FORMS}/clinic/versions/1.xls").status_code == 404


def test_update_draft_new_definition_and_versions(coord: ApiClient) -> None:
    assert post_form(coord, xlsx("1"), publish="true").status_code == 200
    # a definition for another form id is refused on this form's draft
    other = coord.post(f"{FORMS}/clinic/draft", data=xlsx("2", form_id="elsewhere"), **XQ)
    assert other.status_code == 400 and "elsewhere" in other.get_json()["message"]
    changed = xlsx("2", extra_label="Child's name")
    assert coord.post(f"{FORMS}/clinic/draft", data=changed, **XQ).get_json() == {"success": True}
    assert coord.get(f"{FORMS}/clinic").get_json()["version"] == "1"  # phones keep version 1
    assert coord.get(f"{FORMS}/clinic/draft").get_json()["version"] == "2"
    assert coord.post(f"{FORMS}/clinic/draft/publish").status_code == 200
    versions = coord.get(f"{FORMS}/clinic/versions").get_json()
    assert [v["version"] for v in versions] == ["2", "1"]
    assert coord.get(f"{FORMS}/clinic/versions/1").get_json()["version"] == "1"
    assert b"Child&apos;s name" in coord.get(f"{FORMS}/clinic/versions/2.xml").data or \
        b"Child's name" in coord.get(f"{FORMS}/clinic/versions/2.xml").data
    assert b"Child's name" not in coord.get(f"{FORMS}/clinic/versions/1.xml").data
    assert coord.get(f"{FORMS}/clinic/versions/2.xlsx").data == changed
    assert coord.get(f"{FORMS}/clinic/versions/9").status_code == 404


def test_draft_copy_of_published_needs_a_new_version(coord: ApiClient) -> None:
    assert post_form(coord, xlsx("1"), publish="true").status_code == 200
    resp = coord.post(f"{FORMS}/clinic/draft")  # no body: a copy of the published version
    assert resp.status_code == 200, resp.get_data(as_text=True)
    taken = coord.post(f"{FORMS}/clinic/draft/publish")
    assert taken.status_code == 409 and taken.get_json()["code"] == 409.6
    assert coord.post(f"{FORMS}/clinic/draft/publish", query_string={"version": "1.1"}).status_code == 200
    assert coord.get(f"{FORMS}/clinic").get_json()["version"] == "1.1"
    # abandon
    assert coord.post(f"{FORMS}/clinic/draft").status_code == 200
    assert coord.delete(f"{FORMS}/clinic/draft").get_json() == {"success": True}
    assert coord.get(f"{FORMS}/clinic/draft").status_code == 404


def test_state_changes_and_bad_input(coord: ApiClient) -> None:
    assert post_form(coord, xlsx("1"), publish="true").status_code == 200
    resp = coord.patch(f"{FORMS}/clinic", json={"state": "closing"})
    assert resp.status_code == 200 and resp.get_json()["state"] == "closing"
    assert coord.get(f"{FORMS}/clinic").get_json()["state"] == "closing"
    bad = coord.patch(f"{FORMS}/clinic", json={"state": "gone"})
    assert bad.status_code == 400 and "open" in bad.get_json()["message"]
    assert coord.patch(f"{FORMS}/clinic", data=b"not json").status_code == 400
    assert coord.post(FORMS, data=b"x", content_type="text/plain").status_code == 415
    # the image question without max-pixels is a pyxform warning: Central's 400.16 unless ignoreWarnings
    warned = post_form(coord, xlsx("2"), publish="true", ignoreWarnings="false")
    assert warned.status_code == 400 and warned.get_json()["code"] == 400.16
    assert "max-pixels" in warned.get_json()["details"]["warnings"]["xlsFormWarnings"][0]
    draft = coord.post(f"{FORMS}/clinic/draft", data=xlsx("2"), content_type=XLSX)
    assert draft.status_code == 400 and draft.get_json()["code"] == 400.16
    assert coord.get(f"{FORMS}/clinic/draft").status_code == 404  # nothing was kept
    assert coord.post(FORMS, data=b"", **XQ).status_code == 400
    assert coord.post(FORMS, data=b"not a spreadsheet", **XQ).status_code == 400


def test_readers_read_and_only_maintainers_write(coord: ApiClient, login: Any) -> None:
    assert post_form(coord, xlsx("1"), publish="true").status_code == 200
    assert coord.post(f"{FORMS}/clinic/draft").status_code == 200
    manager = login("lhamo", "manager", ["540102"])
    assert manager.get(f"{FORMS}/clinic/draft").status_code == 403  # it carries the test token
    assert manager.get(f"{FORMS}/clinic/draft.xml").status_code == 403
    assert manager.get(f"{FORMS}/clinic/versions/1.xml").status_code == 200
    assert manager.get(f"{FORMS}/clinic/attachments").status_code == 200
    assert manager.get(f"{FORMS}/clinic/versions").status_code == 200
    assert manager.post(f"{FORMS}/clinic/draft/publish", query_string={"version": "5"}).status_code == 403
    assert manager.delete(f"{FORMS}/clinic/draft").status_code == 403
    assert manager.patch(f"{FORMS}/clinic", json={"state": "closed"}).status_code == 403
    assert post_form(manager, xlsx("7", form_id="mine"), publish="false").status_code == 403
    assert coord.get(f"{FORMS}/clinic").get_json()["state"] == "open"


def test_xform_body_and_an_abandoned_new_form(coord: ApiClient) -> None:
    assert post_form(coord, xlsx("1"), publish="false").status_code == 200
    xml = coord.get(f"{FORMS}/clinic/draft.xml").data.replace(b'id="clinic"', b'id="clinic2"')
    made = coord.post(FORMS, data=xml, content_type="application/xml")  # Central's default: a draft
    assert made.status_code == 200 and made.get_json()["xmlFormId"] == "clinic2"
    assert coord.get(f"{FORMS}/clinic2/draft").get_json()["version"] == "1"
    # a never-published form whose draft is abandoned is gone; its id can be used again
    assert coord.delete(f"{FORMS}/clinic2/draft").status_code == 200
    assert coord.get(f"{FORMS}/clinic2/draft").status_code == 404
    again = coord.post(FORMS, data=xml, content_type="application/xml")
    assert again.status_code == 200 and again.get_json()["xmlFormId"] == "clinic2"
    assert coord.post(f"{FORMS}/clinic2/draft/publish", query_string={"version": "v1"}).status_code == 200
    assert coord.get(f"{FORMS}/clinic2").get_json()["version"] == "v1"
    # an XForm version has no XLSForm to download
    missing = coord.get(f"{FORMS}/clinic2/versions/v1.xlsx")
    assert missing.status_code == 404 and ".xml" in missing.get_json()["message"]


def test_a_draft_only_form_on_the_website(coord: ApiClient, app: Any, make_user: Any) -> None:
    from tests.app.forms.test_web_forms import signed_in

    assert post_form(coord, xlsx("1"), publish="false").status_code == 200
    b = signed_in(app, make_user, lang="en")
    index = b.get("/forms")
    assert index.status_code == 200 and "clinic" in index.get_data(as_text=True)
    assert b.get("/forms/clinic").status_code == 200
    page = b.get("/forms/clinic/draft")
    assert page.status_code == 200 and "/v1/test/" in page.get_data(as_text=True)
