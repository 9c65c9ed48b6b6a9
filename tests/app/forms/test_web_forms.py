"""Coordinator pages for forms: list, upload → preview → publish, versions, media files, states."""
from __future__ import annotations

import io
import re
from html import unescape
from typing import Any

from lxml import etree
from sqlalchemy import select

from app.models import AuditEvent, Form
from tests.app.conftest import PASSWORD
from tests.app.web_helpers import Browser
from tests.support.digest_client import DigestClient
from tests.support.sample_forms import BROKEN_MD, household_md

XFORMS_NS = "http://openrosa.org/xforms/xformsList"

BILINGUAL_MD = """
| settings |
| | form_id | version | form_title | default_language |
| | visit | {version} | Home visit | English (en) |

| survey |
| | type | name | label::English (en) | label::中文 (zh) | relevant |
| | text | child_name | Child's name | 儿童姓名 | |
| | integer | age | Age | 年龄 | |
| | text | school | School | 学校 | ${{age}} >= 6 |
"""

MEDIA_MD = """
| settings |
| | form_id | version | form_title |
| | media_form | 1 | Village survey |

| survey |
| | type | name | label |
| | select_one_from_file villages.csv | village | Village |
"""
VILLAGES = "name,label\r\n540102002201,村 A\r\n".encode()


def signed_in(app: Any, make_user: Any, name: str = "coord", role: str = "coordinator", lang: str = "") -> Browser:
    make_user(name, role, ["54"] if role == "coordinator" else None)  # forms reach the whole province
    b = Browser(app)
    assert b.login(name).status_code == 302
    b.get("/")  # signing in starts a new session: a fresh CSRF token
    if lang:
        assert b.post("/language", {"lang": lang, "next": "/"}).status_code == 302
    return b


def upload(b: Browser, text: str | bytes, filename: str = "form.md") -> Any:
    data = text.encode() if isinstance(text, str) else text
    b.get("/forms")
    return b.post("/forms/upload", {"file": (io.BytesIO(data), filename)}, content_type="multipart/form-data")


def hidden(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no hidden field {name}"
    return unescape(m.group(1))


def publish_fields(html: str) -> dict[str, str]:
    return {n: hidden(html, n) for n in ("key", "filename", "sig")}


def form_ids(app: Any, user: str) -> list[str]:
    resp = DigestClient(app.test_client(), user, PASSWORD).get("/v1/projects/1/formList")
    assert resp.status_code == 200
    root = etree.fromstring(resp.data)
    return [x.findtext(f"{{{XFORMS_NS}}}formID") or "" for x in root.findall(f"{{{XFORMS_NS}}}xform")]


def actions(rt: Any) -> list[tuple[str, str]]:
    with rt.db.session() as s:
        return [(e.action, e.target) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


# ---------------------------------------------------------------- access

def test_signed_out_users_go_to_login(app: Any) -> None:
    client = app.test_client()
    for url in ("/forms", "/forms/household"):
        resp = client.get(url)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next=")


def test_managers_may_not_open_form_pages(app: Any, make_user: Any, household: Any) -> None:
    b = signed_in(app, make_user, "mgr", "manager")
    assert b.get("/forms").status_code == 403
    assert b.get("/forms/household").status_code == 403
    assert upload(b, household_md("2")).status_code == 403
    assert b.post("/forms/household/state", {"state": "closed"}).status_code == 403
    home = b.get("/").get_data(as_text=True)
    assert 'href="/forms"' not in home


def test_admin_may_open_forms_and_sees_the_nav_entry(app: Any, make_user: Any, household: Any) -> None:
    b = signed_in(app, make_user, "root", "admin", lang="en")
    page = b.get("/forms")
    assert page.status_code == 200
    assert 'href="/forms"' in b.get("/").get_data(as_text=True)


def test_post_without_csrf_token_is_refused(app: Any, make_user: Any, household: Any, rt: Any) -> None:
    b = signed_in(app, make_user)
    resp = b.client.post("/forms/upload", data={"file": (io.BytesIO(household_md("2").encode()), "f.md")},
                         content_type="multipart/form-data")
    assert resp.status_code == 400
    assert b.client.post("/forms/household/state", data={"state": "closed"}).status_code == 400
    with rt.db.session() as s:
        assert s.scalar(select(Form.state).where(Form.xml_form_id == "household")) == "open"


# ---------------------------------------------------------------- list

def test_list_shows_state_versions_submissions_and_missing_files(app: Any, make_user: Any, publish: Any,
                                                                 submit: Any) -> None:
    publish(household_md("2"))  # a second version of the household form
    assert submit().status_code == 201  # a submission to version 1 (the submit fixture's XML)
    publish(MEDIA_MD)
    b = signed_in(app, make_user, lang="en")
    page = b.get("/forms").get_data(as_text=True)
    row = re.search(r"<tr>\s*<td class=\"lead\"><a href=\"/forms/household\">.*?</tr>", page, re.S)
    assert row, page
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)]
    assert cells[:6] == ["Household visit", "household", "Open", "2", "2", "1"]
    media = re.search(r"<tr>\s*<td class=\"lead\"><a href=\"/forms/media_form\">.*?</tr>", page, re.S)
    assert media and "villages.csv" in media.group(0) and "1 missing" in media.group(0)
    assert 'class="table-wrap"' in page


# ---------------------------------------------------------------- upload → preview → publish

def test_broken_xlsform_shows_sheet_and_row(app: Any, make_user: Any, rt: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    resp = upload(b, BROKEN_MD, "broken.md")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    row = re.search(r"<tr><td>(\w+)</td><td>(\d+)</td><td class=\"msg\">([^<]*)</td></tr>", page)
    assert row, page
    assert row.group(1) == "survey" and row.group(2) == "3" and "integr" in unescape(row.group(3))
    assert "Publish</button>" not in page
    with rt.db.session() as s:
        assert s.scalars(select(Form)).all() == []


def test_a_file_that_is_not_a_spreadsheet_gets_a_clear_page(app: Any, make_user: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    resp = upload(b, b"%PDF-1.4 not a form", "scan.xlsx")
    assert resp.status_code == 400
    assert "is not an Excel workbook" in resp.get_data(as_text=True)
    resp = upload(b, b"\x00\x01binary", "photo.jpg")
    assert resp.status_code == 400 and "cannot read &#39;.jpg&#39; files" in resp.get_data(as_text=True)
    b.get("/forms")
    resp = b.post("/forms/upload", {}, content_type="multipart/form-data")  # no file chosen
    assert resp.status_code == 400 and "Choose a file" in resp.get_data(as_text=True)


def test_the_chinese_page_translates_known_library_messages(app: Any, make_user: Any) -> None:
    b = signed_in(app, make_user)  # Chinese is the default language
    page = upload(b, b"%PDF-1.4", "scan.xlsx").get_data(as_text=True)
    assert "这个文件不是 Excel 工作簿" in page and "工作表" in page


def test_upload_too_large_is_refused(app_config: dict[str, Any], make_user: Any, rt: Any) -> None:
    from app import create_app

    small = create_app({**app_config, "MAX_UPLOAD_BYTES": 100})
    try:
        b = signed_in(small, make_user, lang="en")
        resp = upload(b, household_md("1"))
        assert resp.status_code == 413 and "larger than" in resp.get_data(as_text=True)
    finally:
        small.extensions["carefile"].db.dispose()


def test_preview_then_publish_makes_the_form_available_to_collectors(app: Any, make_user: Any, rt: Any,
                                                                      collector: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    resp = upload(b, BILINGUAL_MD.format(version="1"), "visit.md")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Publish</button>" in page and "new form" in page
    assert "Child&#39;s name" in page and "儿童姓名" not in page  # labels in the UI language
    school = re.search(r"<code>school</code>.*?</tr>", page, re.S)
    assert school and "/data/age" in school.group(0) and "&gt;= 6" in school.group(0)  # relevance
    assert "ODK Validate skipped" in page
    assert "<code>integer</code>" in page and "<code>school</code>" in page
    assert form_ids(app, "tashi") == []  # nothing published by the preview
    fields = publish_fields(page)
    assert re.fullmatch(r"[0-9a-f]{64}", fields["key"])
    assert rt.store.exists(fields["key"])

    resp = b.post("/forms/publish", fields)
    assert resp.status_code == 302 and resp.headers["Location"] == "/forms/visit"
    assert form_ids(app, "tashi") == ["visit"]
    assert ("form.publish", "form:visit") in actions(rt)
    detail = b.get("/forms/visit").get_data(as_text=True)
    assert "Version 1 of visit is published." in detail
    assert "coord" in detail  # published by


def test_preview_labels_follow_the_ui_language(app: Any, make_user: Any) -> None:
    b = signed_in(app, make_user)
    page = upload(b, BILINGUAL_MD.format(version="1"), "visit.md").get_data(as_text=True)
    assert "儿童姓名" in page and "发布</button>" in page


def test_publish_refuses_a_forged_or_foreign_key(app: Any, make_user: Any, rt: Any) -> None:
    a = signed_in(app, make_user, "coord", lang="en")
    fields = publish_fields(upload(a, household_md("1"), "household.md").get_data(as_text=True))
    other = signed_in(app, make_user, "coord2", lang="en")
    other.get("/forms")
    assert other.post("/forms/publish", fields).status_code == 400  # signature bound to the uploader
    forged = dict(fields, key="0" * 64)
    assert a.post("/forms/publish", forged).status_code == 400
    assert a.post("/forms/publish", dict(fields, filename="x.xml")).status_code == 400
    with rt.db.session() as s:
        assert s.scalars(select(Form)).all() == []
    assert a.post("/forms/publish", fields).status_code == 302


def test_new_version_becomes_a_draft_and_a_used_version_is_flagged(app: Any, make_user: Any, rt: Any,
                                                                   household: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    page = upload(b, household_md("2"), "household.md").get_data(as_text=True)
    assert "This file becomes its draft: phones keep version 1" in page
    warning = re.search(r"<tr><td>survey</td><td>7</td><td class=\"msg\">([^<]*max-pixels[^<]*)</td></tr>", page)
    assert warning, "the image question's warning names its sheet and row"
    assert "Save as draft</button>" in page and "already published" not in page
    resp = b.post("/forms/publish", publish_fields(page))
    assert resp.status_code == 302 and resp.headers["Location"] == "/forms/household/draft"
    detail = b.get("/forms/household").get_data(as_text=True)
    assert re.search(r"<td>1 <span class=\"badge green\">Current</span></td>", detail)
    assert detail.count("UTC</td>") == 1  # still one published version
    assert "Version 2 is a draft" in detail

    changed = household_md("1", extra="| | text | remark | Remark | | |")
    again = upload(b, changed, "household.md").get_data(as_text=True)
    assert "Version 1 is already published. Choose a new version" in again
    assert "The form already has a draft: this file replaces it" in again


def test_a_form_published_meanwhile_gets_the_upload_as_draft(app: Any, make_user: Any, rt: Any,
                                                              publish: Any) -> None:
    b = signed_in(app, make_user)  # Chinese
    changed = household_md("1", extra="| | text | remark | Remark | | |")
    fields = publish_fields(upload(b, changed, "household.md").get_data(as_text=True))
    publish(household_md("1"))  # someone else publishes version 1 meanwhile
    resp = b.post("/forms/publish", fields)
    assert resp.status_code == 302 and resp.headers["Location"] == "/forms/household/draft"
    page = b.get("/forms/household/draft").get_data(as_text=True)
    assert "草稿已保存" in page and "版本 1 已经发布过" in page


# ---------------------------------------------------------------- form page: state, files

def test_state_buttons_change_what_phones_see(app: Any, make_user: Any, rt: Any, household: Any,
                                              collector: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    page = b.get("/forms/household").get_data(as_text=True)
    for word in ("Hidden from phones&#39; form lists", "new submissions are refused", "Phones download the form"):
        assert word in page
    assert form_ids(app, "tashi") == ["household"]
    resp = b.post("/forms/household/state", {"state": "closing"})
    assert resp.status_code == 302
    assert form_ids(app, "tashi") == []
    assert "The form is now Closing." in b.get("/forms/household").get_data(as_text=True)
    assert b.post("/forms/household/state", {"state": "deleted"}).status_code == 400
    with rt.db.session() as s:
        assert s.scalar(select(Form.state).where(Form.xml_form_id == "household")) == "closing"
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "form.state")).one()
        assert event.details == {"old": "open", "new": "closing"} and event.target == "form:household"


def test_upload_and_download_a_media_file(app: Any, make_user: Any, rt: Any, publish: Any) -> None:
    publish(MEDIA_MD)
    b = signed_in(app, make_user, lang="en")
    page = b.get("/forms/media_form").get_data(as_text=True)
    assert "villages.csv" in page and "Missing" in page
    assert b.get("/forms/media_form/files/villages.csv").status_code == 404
    resp = b.post("/forms/media_form/files/villages.csv", {"file": (io.BytesIO(VILLAGES), "any name.csv")},
                  content_type="multipart/form-data")
    assert resp.status_code == 302
    page = b.get("/forms/media_form").get_data(as_text=True)
    assert "Present" in page and "villages.csv was uploaded." in page
    got = b.get("/forms/media_form/files/villages.csv")
    assert got.status_code == 200 and got.data == VILLAGES
    assert "1 missing" not in b.get("/forms").get_data(as_text=True)
    resp = b.post("/forms/media_form/files/other.csv", {"file": (io.BytesIO(b"x"), "other.csv")},
                  content_type="multipart/form-data")
    assert resp.status_code == 400
    assert ("form.attachment", "form:media_form") in actions(rt)


def test_version_files_download(app: Any, make_user: Any, household: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    page = b.get("/forms/household").get_data(as_text=True)
    links = re.findall(r'href="(/forms/household/versions/\d+/(?:source|xml))"', page)
    assert len(links) == 2
    xml = b.get([x for x in links if x.endswith("xml")][0])
    assert xml.status_code == 200 and b"<h:html" in xml.data
    source = b.get([x for x in links if x.endswith("source")][0])
    assert source.status_code == 200 and b"Household visit" in source.data


def test_unknown_form_is_a_404_page(app: Any, make_user: Any) -> None:
    b = signed_in(app, make_user, lang="en")
    resp = b.get("/forms/nothing")
    assert resp.status_code == 404 and "There is no such form." in resp.get_data(as_text=True)


def test_collect_paths_under_forms_still_reach_openrosa(app: Any, household: Any, collect: Any) -> None:
    """The web pages live under /forms too; Collect's root-level form URLs must still win."""
    resp = collect.get("/forms/household.xml", openrosa=False)
    assert resp.status_code == 200 and resp.data.startswith(b"<")
    assert b"<h:html" in resp.data
