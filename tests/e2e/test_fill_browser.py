"""Paper entry and edits in real headless Chromium with ODK Web Forms (issue 9, item 3).

One live server for the module (tests/e2e/live.py). A manager fills a published form in the
browser: the children list offers only the children of the manager's regions, the submission lands
through Collect's ingest under the manager's name with its answers and photo. A coordinator edits
it in Web Forms' edit-instance mode: a new current version with deprecatedID, the photo not re-sent
kept. No request leaves the host.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
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

PASSWORD = "fill test pw"
HOME = "540102002201"  # 城关区 八廓街道: the manager's and the coordinator's county covers it
AWAY = "540121000000"  # 林周县: outside both
FORM_ID = "paper_visit"
PAPER_MD = f"""
| settings |
| | form_id | version | form_title |
| | {FORM_ID} | 1 | Paper visit |

| survey |
| | type | name | label | required |
| | select_one_from_file children.csv | child | Child | yes |
| | text | village | Village code | |
| | text | note | Note | |
| | image | photo | Photo | |
"""
# The smallest valid PNG (1 x 1 pixel): the "photo of the paper form".
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e221bc330000000049454e44ae426082")

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def vendored() -> None:
    """The renderer ships in app/static/vendor/ (committed): nothing is downloaded here."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "vendor_webforms.py"
    check = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, vendored: None) -> Iterator[LiveServer]:
    srv = LiveServer.prepare(tmp_path_factory.mktemp("fill"))
    srv.cli("init")
    from app.services import forms
    from app.services.identity import users

    rt = srv.app().extensions["carefile"]
    with rt.db.write() as s:
        for name, role, regions in [("root", "admin", []), ("coord", "coordinator", ["540102"]),
                                    ("mgr", "manager", ["540102"]), ("dolma", "collector", ["540102"])]:
            users.create_user(s, project_id=1, username=name, role=role, password=PASSWORD,
                              realm=rt.config["DIGEST_REALM"], regions=regions)
        forms.publish_form(s, rt.store, project_id=1, data=REGISTER_MD.encode(), filename="register.md")
        forms.publish_form(s, rt.store, project_id=1, data=PAPER_MD.encode(), filename="paper.md", validate=False)
    srv.start()
    yield srv
    srv.stop()


def _register(server: LiveServer, user: str, name: str, village: str) -> str:
    uid = str(uuid.uuid4())
    resp = requests.post(f"{server.url}/v1/projects/1/submission", auth=HTTPDigestAuth(user, PASSWORD),
                         headers={"X-OpenRosa-Version": "1.0"}, timeout=20,
                         files={"xml_submission_file": ("submission.xml",
                                                        register_xml(f"uuid:{uuid.uuid4()}", uid, name, village),
                                                        "text/xml")})
    assert resp.status_code == 201, resp.text
    return uid


@pytest.fixture(scope="module")
def children(server: LiveServer) -> dict[str, str]:
    return {"home": _register(server, "dolma", "Dolkar 卓嘎", HOME),
            "away": _register(server, "root", "Norbu 诺布", AWAY)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as chromium:
        yield chromium


@pytest.fixture
def open_page(browser: Any, server: LiveServer) -> Iterator[Callable[[str, int], Any]]:
    """open_page(user, width) → a signed-in page; page.outside lists requests to any other host."""
    contexts: list[Any] = []

    def do(user: str, width: int = 1280) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 900}, locale="zh-CN", base_url=server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.outside = []
        page.js_errors = []
        page.on("request", lambda r: page.outside.append(r.url)
                if not r.url.startswith((server.url, "data:", "blob:")) else None)
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        page.goto("/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("form button.primary")
        page.wait_for_url(f"{server.url}/")
        return page

    yield do
    for context in contexts:
        context.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{page.viewport_size['width']}.png"), full_page=True)
    if page.viewport_size["width"] <= 375:
        sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1], f"{name} scrolls sideways: {sizes}"


def _records(server: LiveServer) -> list[Any]:
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from app.models import Form, Submission, SubmissionVersion

    rt = server.app().extensions["carefile"]
    with rt.db.session() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == FORM_ID))
        subs = list(s.scalars(select(Submission).where(Submission.form_id == form.id).order_by(Submission.id)))
        out = []
        for sub in subs:
            versions = list(s.scalars(select(SubmissionVersion).options(selectinload(SubmissionVersion.attachments))
                                      .where(SubmissionVersion.submission_id == sub.id)
                                      .order_by(SubmissionVersion.id)))
            s.expunge_all()
            out.append((sub, versions))
        return out


def _submitter(server: LiveServer, user_id: int | None) -> str | None:
    from app.models import User

    with server.app().extensions["carefile"].db.session() as s:
        user = s.get(User, user_id) if user_id else None
        return user.username if user else None


@pytest.mark.parametrize("width", [375, 1280])
def test_manager_enters_a_paper_form(open_page: Callable[..., Any], server: LiveServer, children: dict[str, str],
                                     tmp_path: Path, width: int) -> None:
    before = len(_records(server))
    page = open_page("mgr", width)
    page.goto(f"/submissions/{FORM_ID}")
    page.click("a#fill")
    page.wait_for_url(f"**/forms/{FORM_ID}/fill")
    child = page.get_by_label("Dolkar 卓嘎")
    child.wait_for()
    # children.csv through the renderer's attachment callback, scoped like the manager's own phone
    assert page.get_by_text("Norbu 诺布").count() == 0
    _shot(page, "fill-paper")
    child.check()
    page.get_by_role("textbox").nth(0).fill(HOME)
    page.get_by_role("textbox").nth(1).fill(f"paper form {width}")
    photo = tmp_path / "page1.png"
    photo.write_bytes(PNG)
    page.set_input_files("#odk-form input[type=file]", str(photo))
    page.get_by_role("button", name="提交").click()  # the renderer's "Send", in the site's Chinese
    page.wait_for_selector("body[data-saved]")
    assert "/submissions/" in page.locator("#fill-status a").get_attribute("href")
    _shot(page, "fill-paper-saved")
    assert page.outside == []
    assert page.js_errors == []

    records = _records(server)
    assert len(records) == before + 1
    sub, [version] = records[-1]
    assert _submitter(server, sub.submitter_id) == "mgr"
    assert version.data["child"] == children["home"]
    assert version.data["note"] == f"paper form {width}"
    assert sub.region_code == HOME
    [att] = version.attachments
    assert att.blob_key is not None and att.md5 == hashlib.md5(PNG).hexdigest()


def test_manager_cannot_edit_and_collect_still_refuses_managers(open_page: Callable[..., Any],
                                                                server: LiveServer) -> None:
    sub, _ = _records(server)[0]
    page = open_page("mgr")
    page.goto(f"/submissions/{FORM_ID}/{sub.instance_id}")
    assert page.locator("a#edit").count() == 0
    resp = page.goto(f"/submissions/{FORM_ID}/{sub.instance_id}/edit")
    assert resp is not None and resp.status == 403
    listed = requests.get(f"{server.url}/v1/projects/1/formList", auth=HTTPDigestAuth("mgr", PASSWORD),
                          headers={"X-OpenRosa-Version": "1.0"}, timeout=10)
    assert FORM_ID not in listed.text  # managers still do not fill forms on a phone


def test_coordinator_edits_keeping_the_photo(open_page: Callable[..., Any], server: LiveServer) -> None:
    sub, versions = _records(server)[0]
    old = versions[-1]
    page = open_page("coord")
    page.goto(f"/submissions/{FORM_ID}/{sub.instance_id}")
    page.click("a#edit")
    page.wait_for_url(f"**/submissions/{FORM_ID}/{sub.instance_id}/edit")
    note = page.get_by_role("textbox").nth(1)
    note.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('#odk-form input[type=text], #odk-form textarea')]"
                           ".some(e => e.value.startsWith('paper form'))")
    _shot(page, "fill-edit")
    note.fill("corrected on the web")
    page.get_by_role("button", name="提交").click()  # the renderer's "Send", in the site's Chinese
    page.wait_for_url(f"**/submissions/{FORM_ID}/{sub.instance_id}")
    assert "corrected on the web" in page.inner_text("main")
    assert page.outside == []
    assert page.js_errors == []

    _, after = _records(server)[0]
    assert len(after) == len(versions) + 1
    previous, current = after[-2], after[-1]
    assert current.current and not previous.current
    assert current.deprecated_id == old.instance_id and current.instance_id != old.instance_id
    assert current.data["note"] == "corrected on the web"
    assert current.data["child"] == old.data["child"]
    assert _submitter(server, current.submitter_id) == "coord"
    [photo] = current.attachments
    [before] = old.attachments
    assert photo.name == before.name and photo.blob_key == before.blob_key and photo.md5 == hashlib.md5(PNG).hexdigest()
