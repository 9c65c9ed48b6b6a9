"""Coordinator pages for collectors: list, add, bulk import, edit, QR codes, token revoke and renew."""
from __future__ import annotations

import hashlib
import io
import re
from html import unescape
from typing import Any

from lxml import etree
from openpyxl import Workbook
from sqlalchemy import select

from app.models import AuditEvent, CollectorToken, FormAssignment, User
from app.services.identity import users as user_service
from app.services.identity.collect import decode_settings
from tests.app.web_helpers import Browser

XFORMS_NS = "http://openrosa.org/xforms/xformsList"
OTHER_MD = """
| settings |
| | form_id | version | form_title |
| | followup | 1 | Follow-up |

| survey |
| | type | name | label |
| | text | note_text | Note |
"""


def signed_in(app: Any, make_user: Any, name: str = "coord", role: str = "coordinator", lang: str = "en",
              regions: list[str] | None = None) -> Browser:
    # Province-wide unless told otherwise: a coordinator without regions manages nobody.
    make_user(name, role, ["54"] if regions is None and role != "admin" else regions)
    b = Browser(app)
    assert b.login(name).status_code == 302
    b.get("/")  # signing in starts a new session: a fresh CSRF token
    if lang:
        assert b.post("/language", {"lang": lang, "next": "/"}).status_code == 302
    return b


def users(rt: Any) -> dict[str, User]:
    with rt.db.session() as s:
        found = {u.username: u for u in s.scalars(select(User))}
        for u in found.values():
            s.expunge(u)
        return found


def actions(rt: Any) -> list[tuple[str, str]]:
    with rt.db.session() as s:
        return [(e.action, e.target) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def qr_cards(html: str) -> list[tuple[str, dict[str, Any]]]:
    cards = re.findall(r'<figure class="qr-card" data-user="([^"]+)" data-settings="([^"]+)">(.*?)</figure>', html,
                       re.S)
    for _, _, body in cards:
        assert body.count("<svg") == 1
    return [(user, decode_settings(unescape(payload))) for user, payload, _ in cards]


def form_list(app: Any, server_url: str) -> Any:
    path = server_url.split("://", 1)[1].split("/", 1)[1]
    return app.test_client().get(f"/{path}/formList", headers={"X-OpenRosa-Version": "1.0"})


def form_ids(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.data
    root = etree.fromstring(resp.data)
    return [x.findtext(f"{{{XFORMS_NS}}}formID") or "" for x in root.findall(f"{{{XFORMS_NS}}}xform")]


def upload(b: Browser, data: bytes, filename: str) -> Any:
    b.get("/collectors/import")
    return b.post("/collectors/import", {"file": (io.BytesIO(data), filename)}, content_type="multipart/form-data")


# ---------------------------------------------------------------- access

def test_signed_out_users_go_to_login(app: Any) -> None:
    client = app.test_client()
    for url in ("/collectors", "/collectors/new", "/collectors/import", "/collectors/qr"):
        resp = client.get(url)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next="), url


def test_managers_may_not_open_collector_pages(app: Any, make_user: Any, collector: Any) -> None:
    b = signed_in(app, make_user, "mgr", "manager")
    for url in ("/collectors", "/collectors/new", "/collectors/import", "/collectors/qr", "/collectors/tashi/edit"):
        assert b.get(url).status_code == 403, url
    assert b.post("/collectors/tashi/revoke").status_code == 403
    assert b.post("/collectors/new", {"username": "x1", "password": "long enough"}).status_code == 403
    assert 'href="/collectors"' not in b.get("/").get_data(as_text=True)


def test_post_without_csrf_token_is_refused(app: Any, make_user: Any, rt: Any, collector: Any) -> None:
    b = signed_in(app, make_user)
    resp = b.client.post("/collectors/new", data={"username": "dolma", "password": "long enough"})
    assert resp.status_code == 400
    assert b.client.post("/collectors/tashi/revoke", data={}).status_code == 400
    assert "dolma" not in users(rt)


def test_admin_sees_the_collectors_page(app: Any, make_user: Any) -> None:
    b = signed_in(app, make_user, "root", "admin")
    assert b.get("/collectors").status_code == 200
    assert 'href="/collectors"' in b.get("/").get_data(as_text=True)


# ---------------------------------------------------------------- add one, list, edit

def test_add_a_collector_then_list_and_set_up_a_phone(app: Any, make_user: Any, rt: Any, household: Any,
                                                        publish: Any) -> None:
    publish(OTHER_MD)
    b = signed_in(app, make_user)
    b.get("/collectors/new")
    resp = b.post("/collectors/new", {"username": "dolma", "display_name": "卓玛", "password": "",
                                      "regions": "540102004, 540102002", "forms": ["household"]})
    assert resp.status_code == 302 and resp.headers["Location"] == "/collectors/qr?u=dolma"
    dolma = users(rt)["dolma"]
    assert dolma.role == "collector" and dolma.display_name == "卓玛"
    assert dolma.region_codes == ["540102002", "540102004"]
    assert ("user.create", "user:dolma") in actions(rt) and ("user.token", "user:dolma") in actions(rt)

    page = b.get("/collectors").get_data(as_text=True)
    row = re.search(r"<tr>\s*<td class=\"pick\"><input[^>]+value=\"dolma\".*?</tr>", page, re.S)
    assert row, page
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row.group(0)))
    assert "卓玛" in text and "540102004" in text and "540102002" in text
    assert "Active" in text and "household" in text and "followup" not in text

    cards = qr_cards(b.get("/collectors/qr?u=dolma").get_data(as_text=True))
    assert [c[0] for c in cards] == ["dolma"]
    assert form_ids(form_list(app, cards[0][1]["general"]["server_url"])) == ["household"]  # only the assigned form


def test_add_a_collector_shows_field_errors_and_creates_nobody(app: Any, make_user: Any, rt: Any,
                                                                collector: Any) -> None:
    b = signed_in(app, make_user)
    b.get("/collectors/new")
    resp = b.post("/collectors/new", {"username": "tashi", "password": "short", "regions": "5401x"})
    assert resp.status_code == 400
    page = unescape(resp.get_data(as_text=True))
    assert "A user named 'tashi' exists already" in page
    assert "The password is too short" in page
    assert "'5401x' is not a region code" in page
    resp = b.post("/collectors/new", {"username": "张三", "password": "long enough"})
    assert resp.status_code == 400 and "Latin letters" in resp.get_data(as_text=True)
    assert set(users(rt)) == {"coord", "tashi"}


def test_edit_regions_and_forms(app: Any, make_user: Any, rt: Any, household: Any, publish: Any,
                                collector: Any) -> None:
    publish(OTHER_MD)
    b = signed_in(app, make_user)
    page = b.get("/collectors/tashi/edit").get_data(as_text=True)
    assert 'value="540102"' in page
    resp = b.post("/collectors/tashi/edit", {"display_name": "扎西", "regions": "540102 540103001",
                                             "forms": ["followup"]})
    assert resp.status_code == 302
    tashi = users(rt)["tashi"]
    assert tashi.display_name == "扎西" and tashi.region_codes == ["540102", "540103001"]
    with rt.db.session() as s:
        assert len(s.scalars(select(FormAssignment).where(FormAssignment.user_id == tashi.id)).all()) == 1
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "user.update")).one()
    assert event.target == "user:tashi" and event.details["forms"] == [[], ["followup"]]
    assert "All open forms" not in re.search(r'value="tashi".*?</tr>', b.get("/collectors").get_data(as_text=True),
                                             re.S).group(0)  # type: ignore[union-attr]
    # Untick every form: the collector gets every open form again.
    assert b.post("/collectors/tashi/edit", {"display_name": "扎西", "regions": "540102"}).status_code == 302
    with rt.db.session() as s:
        assert s.scalars(select(FormAssignment).where(FormAssignment.user_id == tashi.id)).all() == []
    bad = b.post("/collectors/tashi/edit", {"display_name": "扎西", "regions": "99x"})
    assert bad.status_code == 400 and "is not a region code" in unescape(bad.get_data(as_text=True))
    assert b.get("/collectors/nobody/edit").status_code == 404
    assert b.get("/collectors/coord/edit").status_code == 404  # only collectors are edited here


# ---------------------------------------------------------------- bulk import

def test_bulk_import_with_one_bad_row_creates_nobody(app: Any, make_user: Any, rt: Any, household: Any) -> None:
    b = signed_in(app, make_user)
    csv = ("username,display_name,password,regions,forms\n"
           "dolma,卓玛,,540102004 540102002,household\n"
           "pema,白玛,long enough,54010200x,\n"
           "norbu,罗布,,540102003,\n").encode()
    resp = upload(b, csv, "roster.csv")
    assert resp.status_code == 400
    page = unescape(resp.get_data(as_text=True))
    row = re.search(r"<tr><td>(\d+)</td><td>([^<]*)</td><td class=\"msg\">([^<]*)</td></tr>", page)
    assert row and row.group(1) == "3" and row.group(2) == "Regions" and "54010200x" in row.group(3)
    assert "Nobody was added" in page
    assert set(users(rt)) == {"coord"}


def test_bulk_import_lists_every_row_error(app: Any, make_user: Any, rt: Any, collector: Any) -> None:
    b = signed_in(app, make_user)
    csv = (b"username;password;forms\n"
           b"tashi;;\n"
           b"dolma;short;\n"
           b"dolma;;nothing\n")
    page = unescape(upload(b, csv, "roster.csv").get_data(as_text=True))
    errors = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td class=\"msg\">([^<]*)</td></tr>", page)
    assert [(r, c) for r, c, _ in errors] == [("2", "User name"), ("3", "Password"), ("4", "User name"),
                                              ("4", "Forms")]
    assert "also in row 3" in errors[2][2]


def test_bulk_import_from_xlsx_creates_everyone(app: Any, make_user: Any, rt: Any, household: Any) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["用户名", "姓名", "密码", "地区", "表单"])  # Chinese headers are understood too
    ws.append(["dolma", "卓玛", None, 540102004, "household"])  # a code typed as a number
    ws.append([None, None, None, None, None])
    ws.append(["pema", "白玛", "long enough", "540102002,540102003", None])
    buf = io.BytesIO()
    wb.save(buf)
    b = signed_in(app, make_user)
    resp = upload(b, buf.getvalue(), "roster.xlsx")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    found = users(rt)
    assert found["dolma"].region_codes == ["540102004"] and found["pema"].region_codes == ["540102002", "540102003"]
    assert "2 collectors were added from roster.xlsx." in b.get("/collectors").get_data(as_text=True)
    with rt.db.session() as s:
        assert len(s.scalars(select(CollectorToken).where(CollectorToken.revoked_at.is_(None))).all()) == 2
    assert actions(rt).count(("user.create", "user:pema")) == 1
    assert len(qr_cards(b.get("/collectors/qr").get_data(as_text=True))) == 2


def test_bulk_import_refuses_files_that_are_not_rosters(app: Any, make_user: Any, rt: Any) -> None:
    b = signed_in(app, make_user)
    assert "Excel workbook (.xlsx) or a CSV" in upload(b, b"%PDF-1.4", "scan.pdf").get_data(as_text=True)
    assert "damaged" in upload(b, b"PK\x03\x04broken", "roster.xlsx").get_data(as_text=True)
    resp = upload(b, b"name_of_person,age\nx,1\n", "roster.csv")
    assert resp.status_code == 400 and "must name the columns" in resp.get_data(as_text=True)
    assert set(users(rt)) == {"coord"}


def test_bulk_import_template_is_a_valid_roster(app: Any, make_user: Any, rt: Any, household: Any) -> None:
    b = signed_in(app, make_user)
    template = b.get("/collectors/import/collectors.csv")
    assert template.status_code == 200 and template.mimetype == "text/csv"
    assert upload(b, template.data, "collectors.csv").status_code == 302
    assert {"zhuoma", "tashi"} <= set(users(rt))


def test_row_errors_in_chinese(app: Any, make_user: Any) -> None:
    b = signed_in(app, make_user, lang="zh")
    page = upload(b, b"username,regions\nzhuoma,12x\n", "r.csv").get_data(as_text=True)
    assert "不是地区代码" in page and "没有添加任何人" in page


# ---------------------------------------------------------------- QR codes and tokens

def test_qr_page_has_one_svg_per_collector_with_the_server_url(app: Any, make_user: Any, rt: Any,
                                                               household: Any) -> None:
    make_user("dolma", "collector", ["540102004"])
    make_user("pema", "collector", ["540102002"])
    b = signed_in(app, make_user)
    for name in ("dolma", "pema"):
        assert b.post(f"/collectors/{name}/renew").status_code == 302  # issue their first token
    resp = b.get("/collectors/qr")
    assert resp.headers["Cache-Control"] == "no-store"
    page = resp.get_data(as_text=True)
    assert page.count("<svg") == 2
    assert "http://" not in page.replace("http://localhost", "")  # nothing external
    assert not re.findall(r'<script(?! src="/static/)', page)  # only the site's own script file
    cards = dict(qr_cards(page))
    with rt.db.session() as s:
        dolma = s.scalar(select(User).where(User.username == "dolma"))
        row = s.scalar(select(CollectorToken).where(CollectorToken.user_id == dolma.id))  # type: ignore[union-attr]
        token = user_service.shown_token(row, rt.config["SECRET_KEY"])  # type: ignore[arg-type]
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token  # type: ignore[union-attr]
    url = cards["dolma"]["general"]["server_url"]
    assert url == f"http://localhost/v1/key/{token}/projects/1"
    assert url in unescape(page)  # printed under the code
    assert cards["dolma"]["general"]["form_update_mode"] == "match_exactly"
    assert form_ids(form_list(app, url)) == ["household"]
    assert "CAREFILE_PUBLIC_URL" in page  # the address came from the browser: say so
    only = qr_cards(b.get("/collectors/qr?u=pema").get_data(as_text=True))
    assert [u for u, _ in only] == ["pema"]


def test_qr_uses_the_public_url(app_config: dict[str, Any], make_user: Any, rt: Any) -> None:
    from app import create_app

    app2 = create_app({**app_config, "PUBLIC_URL": "http://192.168.1.20:8000/"})
    try:
        make_user("dolma", "collector")
        b = signed_in(app2, make_user)
        b.post("/collectors/dolma/renew")
        page = b.get("/collectors/qr").get_data(as_text=True)
        ((_, settings),) = qr_cards(page)
        assert settings["general"]["server_url"].startswith("http://192.168.1.20:8000/v1/key/")
        assert "CAREFILE_PUBLIC_URL" not in page
    finally:
        app2.extensions["carefile"].db.dispose()


def test_revoke_locks_the_phone_out_and_renew_gives_a_new_code(app: Any, make_user: Any, rt: Any,
                                                                household: Any) -> None:
    b = signed_in(app, make_user)
    b.get("/collectors/new")
    b.post("/collectors/new", {"username": "dolma", "regions": "540102"})
    ((_, settings),) = qr_cards(b.get("/collectors/qr?u=dolma").get_data(as_text=True))
    old = settings["general"]["server_url"]
    assert form_list(app, old).status_code == 200

    assert b.post("/collectors/dolma/revoke").status_code == 302
    assert form_list(app, old).status_code == 403
    page = b.get("/collectors").get_data(as_text=True)
    assert "Revoked" in page and "The QR code of dolma was revoked" in page
    qr = b.get("/collectors/qr?u=dolma").get_data(as_text=True)
    assert "<svg" not in qr and "Without a valid QR code" in qr

    resp = b.post("/collectors/dolma/renew")
    assert resp.status_code == 302 and resp.headers["Location"] == "/collectors/qr?u=dolma"
    ((_, settings),) = qr_cards(b.get("/collectors/qr?u=dolma").get_data(as_text=True))
    new = settings["general"]["server_url"]
    assert new != old and form_list(app, new).status_code == 200 and form_list(app, old).status_code == 403
    assert ("user.revoke", "user:dolma") in actions(rt)
    assert actions(rt).count(("user.token", "user:dolma")) == 2  # issued at creation, then renewed
