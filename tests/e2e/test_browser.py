"""The web UI in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

One live server for the module (``carefile init`` + ``carefile user add`` + gunicorn on a
loopback port, see tests/e2e/live.py). Every page is opened at phone width (375 px) and desktop
width (1280 px); at 375 px the page must not scroll sideways. Full-page screenshots go to
tests/artifacts/screenshots/ (gitignored) for a person to look at.

Playwright's own browser download is not used: Chromium comes from apt (scripts/test.sh installs
it); CAREFILE_CHROMIUM names another binary.
"""
from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.auth import HTTPDigestAuth

from tests.e2e.chromium import SHOTS, launch, needs_chromium
from tests.e2e.live import LiveServer
from tests.support.entity_forms import REGISTER_MD, register_xml

WIDTHS = [375, 1280]
PASSWORD = "browser test pw"
VILLAGE = "540102002201"

pytestmark = needs_chromium



def built(module: str) -> Any:
    """xfail a test of a page whose module (app/web/<module>.py) is not written yet."""
    if (Path(__file__).resolve().parents[2] / "app" / "web" / f"{module}.py").exists():
        return lambda test: test
    return pytest.mark.xfail(strict=False, reason="page not built yet")


# -- the server and the browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("browser")
    srv = LiveServer.prepare(root)
    srv.cli("init")
    # Seeding in-process (one import instead of a CLI process per user: ~7 s less).
    from app.services import forms
    from app.services.identity import users

    rt = srv.app().extensions["carefile"]
    with rt.db.write() as s:
        for name, role, regions in [("root", "admin", []), ("coord", "coordinator", ["54"]),
                                    ("mgr", "manager", ["540102"]), ("dolma", "collector", ["540102"])]:
            users.create_user(s, project_id=1, username=name, role=role, password=PASSWORD,
                              realm=rt.config["DIGEST_REALM"], regions=regions)
        forms.publish_form(s, rt.store, project_id=1, data=REGISTER_MD.encode(), filename="register.md")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def sign_in(browser: Any, server: LiveServer) -> Callable[[str], dict[str, Any]]:
    """Signs a user in once through the sign-in page; returns the cookies for later pages."""
    states: dict[str, dict[str, Any]] = {}

    def do(username: str) -> dict[str, Any]:
        if username not in states:
            context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
            page = context.new_page()
            page.goto(f"{server.url}/login")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", PASSWORD)
            page.click("form button.primary")
            page.wait_for_url(f"{server.url}/")
            states[username] = context.storage_state()
            context.close()
        return states[username]

    return do


@pytest.fixture
def open_page(browser: Any, server: LiveServer, sign_in: Callable[[str], dict[str, Any]]
              ) -> Iterator[Callable[..., Any]]:
    """open_page(width, user=None) → a Playwright page in a fresh context (signed in as user)."""
    contexts: list[Any] = []

    def do(width: int, user: str | None = None) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 800}, locale="zh-CN",
                                      base_url=server.url, storage_state=sign_in(user) if user else None)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        return page

    yield do
    for context in contexts:
        context.close()


def check_layout(page: Any, name: str) -> None:
    """Screenshot the page; at phone width it must not scroll sideways; no script errors."""
    width = page.viewport_size["width"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    if width <= 375:
        assert sizes[0] <= sizes[1], f"{name} scrolls sideways at {width} px: {sizes}"
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap'))
            .slice(0, 5).map(e => e.tagName + '.' + e.className)""")
        assert wide == [], f"{name}: elements wider than the screen at {width} px: {wide}"
    assert page.js_errors == [], page.js_errors


# -- sign-in, users, audit log ----------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_sign_in(open_page: Callable[..., Any], width: int) -> None:
    page = open_page(width)
    page.goto("/users")
    assert "/login" in page.url  # signed out: sent to the sign-in page
    check_layout(page, "login")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "not the password")
    page.click("form button.primary")
    assert page.locator("[role=alert]").is_visible()
    check_layout(page, "login-error")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button.primary")
    page.wait_for_url("**/users")  # back to the page first asked for
    assert page.locator("nav.nav a[href='/users']").is_visible()
    assert page.locator("nav.nav a[href='/audit']").is_visible()
    page.goto("/")
    check_layout(page, "home-admin")


@pytest.mark.parametrize("width", WIDTHS)
def test_manager_cannot_open_admin_pages(open_page: Callable[..., Any], width: int) -> None:
    page = open_page(width, "mgr")
    page.goto("/")
    assert page.locator("a[href='/users']").count() == 0
    resp = page.goto("/users")
    assert resp is not None and resp.status == 403
    check_layout(page, "forbidden")


@pytest.mark.parametrize("width", WIDTHS)
def test_add_edit_and_deactivate_a_user(open_page: Callable[..., Any], server: LiveServer, width: int) -> None:
    name = f"pema{width}"
    page = open_page(width, "root")
    page.goto("/users")
    check_layout(page, "users")
    page.click("a[href='/users/new']")
    check_layout(page, "users-new")
    page.fill("input[name=username]", name)
    page.fill("input[name=display_name]", "Pema Lhamo 白玛拉姆")
    page.select_option("select[name=role]", "collector")
    page.fill("input[name=regions]", "540102 540121")
    page.fill("input[name=password]", "pema password 1")
    page.fill("input[name=repeat]", "pema password 1")
    page.click("form button.primary")
    page.wait_for_url("**/users/*")
    assert page.locator("p.flash").is_visible()
    assert page.input_value("input[name=regions]") == "540102 540121"
    check_layout(page, "users-edit")

    # Collect (Digest) works for the new collector, until the user is deactivated
    form_list = f"{server.url}/v1/projects/1/formList"
    headers = {"X-OpenRosa-Version": "1.0"}
    assert requests.get(form_list, auth=HTTPDigestAuth(name, "pema password 1"), headers=headers,
                        timeout=10).status_code == 200
    page.fill("input[name=regions]", "540102")
    page.select_option("select[name=role]", "manager")
    user_id = page.url.rsplit("/", 1)[1]
    page.click(f"form[action$='/users/{user_id}'] button.primary")
    page.wait_for_load_state()
    assert page.input_value("input[name=regions]") == "540102"
    page.click("button.danger")  # Deactivate
    page.wait_for_load_state()
    assert page.locator(".users-head .badge.red").is_visible()
    check_layout(page, "users-edit-deactivated")
    assert requests.get(form_list, auth=HTTPDigestAuth(name, "pema password 1"), headers=headers,
                        timeout=10).status_code == 401
    page.goto("/users")
    row = page.locator("li.user", has_text=name)
    assert row.locator(".badge.red").is_visible() and "540102" in row.inner_text()

    # the audit log shows the three changes, newest first, with readable details
    page.goto(f"/audit?target=user:{name}")
    rows = page.locator("table.audit tbody tr")
    assert rows.count() == 3
    # in words (the action's code is the title of the words)
    assert [rows.nth(i).locator("td.what span").get_attribute("title") for i in range(3)] == [
        "user.update", "user.update", "user.create"]
    assert rows.nth(2).locator("td.what").inner_text().strip() in ("添加了用户", "Added a user")
    assert "→" in rows.nth(1).inner_text()


@pytest.mark.parametrize("width", WIDTHS)
def test_audit_log(open_page: Callable[..., Any], width: int) -> None:
    page = open_page(width, "root")
    page.goto("/audit")
    assert "Asia/Shanghai" in page.inner_text("main")
    assert page.locator("table.audit tbody tr").count() >= 1
    check_layout(page, "audit")
    page.fill("input[name=action]", "login")
    page.fill("input[name=user]", "root")
    page.click("form.audit-filters button.primary")
    page.wait_for_url("**/audit?*")
    whats = page.locator("table.audit td.what span").evaluate_all("els => els.map(e => e.title)")
    assert whats and all(w.startswith("login") for w in whats)
    assert "login.ok" not in page.locator("table.audit").inner_text()  # words, not codes
    assert set(page.locator("table.audit td.who").all_inner_texts()) == {"root"}
    check_layout(page, "audit-filtered")


# -- forms (coordinator) and the child file (manager): pages built alongside ------------------


def xlsform(survey: list[list[str]], settings: list[list[str]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "survey"
    for row in survey:
        sheet.append(row)
    settings_sheet = book.create_sheet("settings")
    for row in settings:
        settings_sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


BROKEN = xlsform([["type", "name", "label"], ["text", "child_name", "Child name"], ["integer", "child age", "Age"]],
                 [["form_id", "version", "form_title"], ["home_visit", "1", "Home visit"]])


def good_form(version: str) -> bytes:
    return xlsform([["type", "name", "label"], ["text", "child_name", "Child name"], ["integer", "age", "Age"]],
                   [["form_id", "version", "form_title"], ["home_visit", version, "Home visit"]])


def upload(page: Any, tmp_path: Path, filename: str, data: bytes) -> None:
    path = tmp_path / filename
    path.write_bytes(data)
    page.set_input_files("form.upload input[type=file]", str(path))
    page.click("form.upload button.primary")
    page.wait_for_load_state()


@pytest.mark.parametrize("width", WIDTHS)
@built("forms")
def test_upload_broken_then_publish_a_form(open_page: Callable[..., Any], tmp_path: Path, width: int) -> None:
    page = open_page(width, "coord")
    page.goto("/forms")
    check_layout(page, "forms")
    upload(page, tmp_path, "broken.xlsx", BROKEN)
    assert page.locator("[role=alert]").is_visible()
    issue = page.locator("table.issues tbody tr").first.inner_text()
    assert "survey" in issue and "3" in issue  # the sheet and the row of the bad name
    check_layout(page, "forms-upload-error")

    version = str(width)  # a new version at each width
    upload(page, tmp_path, "home_visit.xlsx", good_form(version))
    assert "home_visit" in page.inner_text("main")
    check_layout(page, "forms-preview")
    page.click("form[action$='/forms/publish'] button.primary")
    # The first upload publishes the form; later ones (the other width) become its draft.
    page.wait_for_url(re.compile(r".*/forms/home_visit(/draft)?$"))
    assert page.locator("p.flash").first.is_visible()
    check_layout(page, "forms-published" if page.url.endswith("home_visit") else "forms-draft-saved")
    page.goto("/forms")
    assert page.locator("table.forms-list", has_text="home_visit").is_visible()


@pytest.fixture(scope="module")
def child(server: LiveServer) -> dict[str, str]:
    """A child registered from a phone the way Collect sends it (Digest, multipart)."""
    uid = str(uuid.uuid4())
    xml = register_xml(f"uuid:{uuid.uuid4()}", uid, "Dolkar 卓嘎", VILLAGE)
    resp = requests.post(f"{server.url}/v1/projects/1/submission", auth=HTTPDigestAuth("dolma", PASSWORD),
                         headers={"X-OpenRosa-Version": "1.0"},
                         files={"xml_submission_file": ("submission.xml", xml, "text/xml")}, timeout=20)
    assert resp.status_code == 201, resp.text
    return {"uuid": uid, "label": "Dolkar 卓嘎"}


@pytest.mark.parametrize("width", WIDTHS)
@built("children")
def test_open_a_child_file(open_page: Callable[..., Any], child: dict[str, str], width: int) -> None:
    page = open_page(width, "mgr")
    page.goto("/children")
    check_layout(page, "children")
    page.click(f"a[href='/children/{child['uuid']}']")
    page.wait_for_url(f"**/children/{child['uuid']}")
    assert child["label"] in page.inner_text("main")
    check_layout(page, "child-file")


@pytest.mark.parametrize("width", WIDTHS)
@built("form_drafts")
def test_draft_test_qr_compare_and_publish(open_page: Callable[..., Any], server: LiveServer, tmp_path: Path,
                                          width: int) -> None:
    form_id = f"draft_demo_{width}"

    def form(version: str, extra: list[list[str]]) -> bytes:
        return xlsform([["type", "name", "label::中文 (zh)", "label::English (en)", "required"],
                        ["text", "child_name", "儿童姓名", "Child name", "yes"], *extra],
                       [["form_id", "version", "form_title"], [form_id, version, "走访 Visit"]])

    page = open_page(width, "coord")
    page.goto("/forms")
    upload(page, tmp_path, "v1.xlsx", form("1", [["integer", "age", "年龄", "Age", ""]]))
    page.click("form[action$='/forms/publish'] button.primary")
    page.wait_for_url(f"**/forms/{form_id}")
    v2 = form("2", [["integer", "age", "年龄（周岁）", "Age in years", "yes"],
                    ["text", "remark", "备注", "Remark", ""]])
    upload(page, tmp_path, "v2.xlsx", v2)
    check_layout(page, "forms-preview-draft")
    page.click("form[action$='/forms/publish'] button.primary")
    page.wait_for_url(f"**/forms/{form_id}/draft")
    assert page.locator("#test .qr svg").is_visible()
    assert "草稿" in page.inner_text("h1")
    check_layout(page, "forms-draft")
    url = page.locator("#test code").inner_text()
    assert url.startswith(server.url + "/v1/test/") and url.endswith(f"/forms/{form_id}/draft")
    listed = requests.get(url + "/formList", headers={"X-OpenRosa-Version": "1.0"}, timeout=10)
    assert listed.status_code == 200 and "<version>2</version>" in listed.text

    page.click(f"a[href='/forms/{form_id}/compare?b=draft']")
    page.wait_for_url(f"**/forms/{form_id}/compare*")
    assert page.locator("li.change.added", has_text="remark").is_visible()
    assert page.locator("li.change.changed", has_text="age").is_visible()
    check_layout(page, "forms-compare")
    page.click("form[action='/language'] button[value=en]")
    page.wait_for_load_state()
    assert "Compare versions" in page.inner_text("h1")
    assert page.locator("li.change.changed table.details", has_text="Required").is_visible()
    check_layout(page, "forms-compare-en")
    page.click("form[action='/language'] button[value=zh]")  # the coordinator's language back for other tests
    page.wait_for_load_state()

    page.goto(f"/forms/{form_id}/draft")
    page.fill("#publish input[name=version]", f"2-{width}")
    page.click("#publish button.primary")
    page.wait_for_url(f"**/forms/{form_id}")
    assert f"2-{width}" in page.locator("#versions").inner_text()
    check_layout(page, "forms-draft-published")
    assert requests.get(url + "/formList", headers={"X-OpenRosa-Version": "1.0"}, timeout=10).status_code == 404


@pytest.fixture(scope="module")
def web_forms_vendored() -> None:
    """ODK Web Forms as shipped in app/static/vendor (pinned versions, integrity checked)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "vendor_webforms.py"
    check = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # they ship with the package: nothing is downloaded


@pytest.mark.parametrize("width", WIDTHS)
@built("form_drafts")
def test_try_a_draft_in_the_browser(open_page: Callable[..., Any], server: LiveServer, web_forms_vendored: None,
                                    width: int) -> None:
    from sqlalchemy import select

    from app.models import DraftSubmission, Form, Submission
    from app.services import forms
    from tests.support.sample_forms import household_md

    form_id = f"try_{width}"
    rt = server.app().extensions["carefile"]
    with rt.db.write() as s:
        forms.publish_form(s, rt.store, project_id=1, data=household_md("1").replace("household", form_id).encode(),
                           filename="h.md", validate=False)
    # the draft adds a map question: ODK Web Forms would fetch OpenStreetMap tiles for it, which must not leave
    draft_md = household_md("2", "| | text | remark | Remark | | |").replace("household", form_id).replace(
        "| | type | name | label | required | relevant |",
        "| | type | name | label | required | relevant | appearance |").replace(
        "| | geopoint | location | Location | | |", "| | geopoint | location | Location | | | placement-map |")
    assert "placement-map" in draft_md
    with rt.db.write() as s:
        forms.create_draft(s, rt.store, project_id=1,
                           key=rt.config["SECRET_KEY"], filename="h2.md", validate=False, data=draft_md.encode())
    page = open_page(width, "coord")
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((server.url, "data:", "blob:"))
            else None)
    page.goto(f"/forms/{form_id}/draft")
    page.click(f"a[href='/forms/{form_id}/draft/try']")
    page.wait_for_url(f"**/forms/{form_id}/draft/try")
    name = page.get_by_role("textbox").first  # the first question: the child's name
    name.wait_for()
    check_layout(page, "forms-draft-try")
    name.fill("Dawa 达瓦")
    page.get_by_role("button", name="提交").click()  # the renderer's "Send", in the site's Chinese
    page.wait_for_selector("#try-status:not([hidden])")
    assert page.locator("body[data-submitted='1']").count() == 1, page.inner_text("#try-status")
    check_layout(page, "forms-draft-try-sent")
    page.wait_for_function("() => document.querySelector('#odk-form input[type=text]')?.value === ''")
    assert outside == []  # nothing but this server (no CDN, no map tiles)
    with rt.db.session() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == form_id))
        draft = forms.require_draft(s, form)
        [test] = s.scalars(select(DraftSubmission).where(DraftSubmission.draft_id == draft.id)).all()
        assert test.data["child_name"] == "Dawa 达瓦"
        assert s.scalar(select(Submission.id).where(Submission.form_id == form.id)) is None


# -- held for review, encryption --------------------------------------------------------------


@pytest.fixture(scope="module")
def held_change(server: LiveServer) -> None:
    """A collector of 540102 registers a child in another county: the change waits for review."""
    from sqlalchemy import select

    from app.models import User
    from app.services.submissions import ingest as submissions

    rt = server.app().extensions["carefile"]
    with rt.db.session() as s:
        dolma = s.scalars(select(User).where(User.username == "dolma")).one()
        s.expunge(dolma)
    result = submissions.receive_submission(
        rt.db, rt.store, project_id=1, user=dolma, files=[],
        xml=register_xml(f"uuid:{uuid.uuid4()}", str(uuid.uuid4()), "Held child", "540121001001"))
    assert result.held


@pytest.mark.parametrize("width", WIDTHS)
def test_held_changes_and_encryption_pages(open_page: Callable[..., Any], held_change: None, width: int) -> None:
    page = open_page(width, "root")
    page.goto("/held")
    assert page.locator("tr[id^=held-]").count() >= 1
    check_layout(page, "held")
    page.goto("/encryption")
    assert page.locator("form").count() >= 1
    check_layout(page, "encryption")
