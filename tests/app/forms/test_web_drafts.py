"""Coordinator pages: a changed XLSForm → draft (test QR, test submissions) → comparison → publish;
every version's XLSForm downloads byte for byte; both languages; audited."""
from __future__ import annotations

import io
import re
from html import unescape
from pathlib import Path
from typing import Any

import openpyxl
from lxml import etree
from sqlalchemy import func, select

from app.models import AuditEvent, DraftSubmission, Submission
from app.services.identity import collect
from tests.app.conftest import submission_body
from tests.app.forms.test_web_forms import actions, form_ids, hidden, publish_fields, signed_in, upload
from tests.support.sample_forms import household_md, household_xml

XFORMS_NS = "{http://openrosa.org/xforms/xformsList}"
SHIPPED = Path(__file__).resolve().parents[3] / "xlsforms" / "visit_record.xlsx"
REMARK = "| | text | remark | Remark | | |"


def save_draft(b: Any, text: str | bytes, filename: str = "household.md") -> Any:
    page = upload(b, text, filename).get_data(as_text=True)
    assert "Save as draft</button>" in page or "保存为草稿</button>" in page, page
    return b.post("/forms/publish", publish_fields(page))


def draft_test_url(page: str) -> str:
    m = re.search(r'<code class="expr">(http://[^<]+/draft)</code>', page)
    assert m, "no test URL on the draft page"
    return unescape(m.group(1))


def post_test(app: Any, url: str, xml: bytes) -> Any:
    path = url.replace("http://localhost", "")
    return app.test_client().post(path + "/submission", data=submission_body(xml, {"photo.jpg": b"\xff\xd8x"})(),
                                  content_type="multipart/form-data", headers={"X-OpenRosa-Version": "1.0"})


def test_draft_tested_compared_and_published_from_the_web(app: Any, make_user: Any, rt: Any, household: Any,
                                                          collector: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    assert save_draft(b, household_md("2", REMARK)).status_code == 302
    page = b.get("/forms/household/draft")
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "The draft is saved." in html and "<svg" in html
    assert "1 added, 0 removed, 0 moved, 0 changed" in html
    assert re.search(r'<a class="badge orange" href="/forms/household/draft">Draft 2</a>', b.get("/forms").get_data(
        as_text=True))
    url = draft_test_url(html)
    # the QR code holds Collect settings pointing at the draft's test URL
    with rt.db.session() as s:
        from app.models import FormDraft
        from app.services import forms

        token = forms.test_token(s.scalar(select(FormDraft)), rt.config["SECRET_KEY"])
    assert url == f"http://localhost/v1/test/{token}/projects/1/forms/household/draft"
    settings = collect.collect_settings(url, "x")
    assert settings["general"]["server_url"] == url
    # phones keep version 1; the test URL serves version 2
    assert form_ids(app, "tashi") == ["household"]
    listed = etree.fromstring(app.test_client().get(url.replace("http://localhost", "") + "/formList",
                                                    headers={"X-OpenRosa-Version": "1.0"}).data)
    assert [x.findtext(f"{XFORMS_NS}version") for x in listed.iter(f"{XFORMS_NS}xform")] == ["2"]
    assert post_test(app, url, household_xml(version="2")).status_code == 201
    html = b.get("/forms/household/draft").get_data(as_text=True)
    assert "uuid:00000000-0000-4000-8000-000000000001" in html and "photo.jpg" in html

    compare = b.get("/forms/household/compare").get_data(as_text=True)
    assert re.search(r'<span class="badge green">Added</span>\s*<code>remark</code>', compare)
    assert "1 → 2 (draft)" in compare
    assert "Remark" in compare

    # a version already published is refused with a message on the draft's page, its publish form at hand
    refused = b.post("/forms/household/draft/publish", {"version": "1"})
    assert refused.status_code == 302 and refused.headers["Location"] == "/forms/household/draft#publish"
    again = b.get("/forms/household/draft").get_data(as_text=True)
    assert "already published" in again and 'action="/forms/household/draft/publish"' in again
    resp = b.post("/forms/household/draft/publish", {"version": "2026113001"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/forms/household"
    detail = b.get("/forms/household").get_data(as_text=True)
    assert "Version 2026113001 of household is published." in detail
    assert "1 test submissions were discarded." in detail
    assert re.search(r"<td>2026113001 <span class=\"badge green\">Current</span></td>", detail)
    assert "No draft." in detail
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(DraftSubmission)) == 0
        assert s.scalar(select(func.count()).select_from(Submission)) == 0
        published = s.scalars(select(AuditEvent).where(AuditEvent.action == "form.publish")).all()
        assert published[-1].details["version"] == "2026113001" and published[-1].details["draft"] is True
    assert ("form.draft", "form:household") in actions(rt)
    assert b.get("/forms/household/draft").status_code == 404
    assert post_test(app, url, household_xml(version="2")).status_code == 404


def test_abandon_keeps_the_published_version(app: Any, make_user: Any, rt: Any, household: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    save_draft(b, household_md("2", REMARK))
    resp = b.post("/forms/household/draft/abandon")
    assert resp.status_code == 302
    assert "The draft was abandoned" in b.get("/forms/household").get_data(as_text=True)
    assert ("form.draft.abandon", "form:household") in actions(rt)
    assert b.get("/forms/household/compare").status_code == 200  # only version 1: nothing to compare


def test_xlsform_of_every_version_and_the_draft_downloads_byte_identical(app: Any, make_user: Any) -> None:
    original = SHIPPED.read_bytes()
    wb = openpyxl.load_workbook(io.BytesIO(original))
    wb["settings"].cell(2, 3).value = "2099010101"  # newer than the shipped version
    survey = wb["survey"]
    for row in range(2, survey.max_row + 1):
        if survey.cell(row, 2).value == "visit_date":
            survey.cell(row, 4).value = "Date of the visit"
    out = io.BytesIO()
    wb.save(out)
    changed = out.getvalue()

    b = signed_in(app, make_user, lang="en")
    page = upload(b, original, "走访记录 visit_record.xlsx").get_data(as_text=True)
    assert b.post("/forms/publish", publish_fields(page)).status_code == 302
    assert save_draft(b, changed, "visit v2.xlsx").status_code == 302
    draft_page = b.get("/forms/visit_record/draft").get_data(as_text=True)
    got = b.get("/forms/visit_record/versions/draft/source")
    assert got.status_code == 200 and got.data == changed
    assert "visit%20v2.xlsx" in got.headers["Content-Disposition"]
    assert b.get("/forms/visit_record/versions/draft/xml").data.startswith(b"<?xml")
    assert "Date of the visit" in b.get("/forms/visit_record/compare").get_data(as_text=True)
    assert "0 added, 0 removed, 0 moved, 1 changed" in draft_page
    assert b.post("/forms/visit_record/draft/publish", {"version": ""}).status_code == 302
    detail = b.get("/forms/visit_record").get_data(as_text=True)
    links = re.findall(r'href="(/forms/visit_record/versions/\d+/source)"', detail)
    assert len(links) == 2
    downloads = {b.get(link).data for link in links}
    assert downloads == {original, changed}
    assert b.get("/forms/visit_record/versions/999999/source").status_code == 404


def test_compare_page_in_chinese(app: Any, make_user: Any, rt: Any, household: Any) -> None:
    b = signed_in(app, make_user)  # Chinese
    save_draft(b, household_md("2", REMARK).replace("| | integer | age | Age | | |",
                                                    "| | integer | age | Age in years | yes | |"))
    page = b.get("/forms/household/compare").get_data(as_text=True)
    assert "比较版本" in page and "新增" in page and "修改" in page and "必填" in page
    assert "2（草稿）" in page
    draft = b.get("/forms/household/draft").get_data(as_text=True)
    assert "在手机上试用" in draft and "发布到手机" in draft


def test_managers_may_not_open_drafts(app: Any, make_user: Any, rt: Any, household: Any) -> None:
    coord = signed_in(app, make_user, lang="en")
    save_draft(coord, household_md("2"))
    mgr = signed_in(app, make_user, "mgr", "manager")
    for url in ("/forms/household/draft", "/forms/household/compare", "/forms/household/versions/draft/source"):
        assert mgr.get(url).status_code == 403
    assert mgr.post("/forms/household/draft/publish", {"version": "9"}).status_code == 403
    assert mgr.post("/forms/household/draft/abandon").status_code == 403
    assert hidden(coord.get("/forms/household/draft").get_data(as_text=True), "csrf_token")


def test_try_page_posts_to_the_draft_test_url_and_loads_only_this_server(app: Any, make_user: Any, rt: Any,
                                                                         household: Any) -> None:
    import json

    b = signed_in(app, make_user, lang="en")
    save_draft(b, household_md("2"))
    resp = b.get("/forms/household/draft/try")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    csp = resp.headers["Content-Security-Policy"]
    assert "'wasm-unsafe-eval'" in csp and "http" not in csp  # no other host may be contacted
    page = resp.get_data(as_text=True)
    m = re.search(r'<script[^>]* id="try-config">(.*?)</script>', page, re.S)
    if m is None:  # the renderer is not vendored here: the page says how to install it
        assert "scripts/vendor_webforms.py" in page
        return
    config = json.loads(m.group(1))
    with rt.db.session() as s:
        from app.models import FormDraft
        from app.services import forms

        token = forms.test_token(s.scalar(select(FormDraft)), rt.config["SECRET_KEY"])
    assert config["submissionUrl"] == f"/v1/test/{token}/projects/1/forms/household/draft/submission"
    assert b.get(config["formUrl"]).status_code == 200
    assert '"vue": "/static/vendor/vue/' in page


def test_entity_lists_follow_the_callers_scope(app: Any, make_user: Any, rt: Any, publish: Any, collect: Any) -> None:
    from tests.app.web_helpers import Browser
    from tests.support.entity_forms import REGISTER_MD, UPDATE_MD, register_xml

    publish(REGISTER_MD, "register.md")
    publish(UPDATE_MD, "followup.md")
    child = "uuid:3f0c6a52-1d2e-4b7e-9a5c-1f2e3d4c5b6a"
    resp = collect.post("/v1/projects/1/submission", content_type="multipart/form-data",
                        data=submission_body(register_xml("uuid:r1", child, "Dolkar", "540102002201")))
    assert resp.status_code == 201
    make_user("c_prov", "coordinator", ["54"])  # the form reaches every collector: a province's coordinator drafts
    make_user("c_in", "coordinator", ["540102"])
    make_user("c_out", "coordinator", ["540121"])
    province, inside, outside = Browser(app), Browser(app), Browser(app)
    assert province.login("c_prov").status_code == 302
    assert inside.login("c_in").status_code == 302 and outside.login("c_out").status_code == 302
    province.get("/forms")
    save_draft(province, UPDATE_MD.replace("| | followup | 1 |", "| | followup | 2 |"), "followup.md")
    url = draft_test_url(province.get("/forms/followup/draft").get_data(as_text=True))
    own = inside.get("/forms/followup/draft/try/files/children.csv")
    assert own.status_code == 200 and "Dolkar" in own.get_data(as_text=True)
    foreign = outside.get("/forms/followup/draft/try/files/children.csv")
    assert foreign.status_code == 200 and "Dolkar" not in foreign.get_data(as_text=True)
    # the test URL identifies nobody: the list's columns, no child
    anonymous = app.test_client().get(url.replace("http://localhost", "") + "/attachments/children.csv")
    assert anonymous.status_code == 200 and "name,label" in anonymous.get_data(as_text=True)
    assert "Dolkar" not in anonymous.get_data(as_text=True)
