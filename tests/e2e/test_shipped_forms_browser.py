"""Every shipped XLSForm (xlsforms/*.xlsx) loads, fills, attaches images and sends in the browser, through
the ODK Web Forms renderer CareFile ships, on the three pages that use it: paper entry
(`/forms/<id>/fill`), a draft's *try it* page and the edit page (issue 17).

One live server per database backend (SQLite, PostgreSQL: CAREFILE_TEST_BACKENDS) with the shipped forms
published by `carefile init`, and one headless Chromium (the system /usr/bin/chromium, no network). A
coordinator of 城关区 (540102) fills every form with a generic filler (tests/e2e/webforms_filler.js):
the first valid choice the renderer offers (region cascade and children.csv included), typed candidates
checked against the form's constraints, and a 1200 x 900 picture attached through the renderer's own
file input wherever an image is asked (photos and signatures: Web Forms shrinks them in a worker). The
registration creates the child the follow-up forms then pick from children.csv. Each page then presses
the renderer's send button and the record is looked up in the database with its stored files.
"""
from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chromium import SHOTS, launch, needs_chromium
from tests.e2e.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
FILLER = (Path(__file__).with_name("webforms_filler.js")).read_text(encoding="utf-8")
# Every workbook of xlsforms/ (a new one is covered without anyone adding it), registrations first: the
# follow-up forms pick the child they made.
_ORDER = ["child_registration", "household_registration", "identification", "assessment", "visit_record",
          "referral_followup"]
FORMS = sorted((p.stem for p in (ROOT / "xlsforms").glob("*.xlsx")),
               key=lambda f: (_ORDER.index(f) if f in _ORDER else len(_ORDER), f))
BACKENDS = [b.strip() for b in os.environ.get("CAREFILE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
PASSWORD = "shipped forms pw"
USER = "coord"
# Drafts of a form that reaches collectors everywhere are for coordinators of the whole province (the
# access policy's form-change rule): the try page and the draft check are opened as this one.
PROVINCE_USER = "coord_all"
REGION = "540102"  # 城关区: the first county of the region cascade

pytestmark = needs_chromium


def png(width: int, height: int, green: int = 90) -> bytes:
    """A valid RGB PNG (stripes), larger than the forms' max-pixels, so the renderer has to shrink it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes((y % 256, green, 160)) * width for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


PICTURE = png(1200, 900)
CORRECTED = png(1200, 900, green=200)  # the picture an edit puts in instead


def image_size(data: bytes) -> tuple[int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":  # JPEG: the first start-of-frame marker
        i = 2
        while i < len(data):
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            i += 2 + length
    raise AssertionError(f"not a PNG or JPEG: {data[:16]!r}")


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = {"CAREFILE_XLSFORMS_DIR": str(ROOT / "xlsforms")}  # `carefile init` publishes the shipped forms
    if request.param == "postgresql":
        from tests.support.pgserver import find_bindir, fresh_database

        if find_bindir() is None:
            pytest.skip("PostgreSQL server binaries not found")
        settings["CAREFILE_DATABASE_URL"] = fresh_database(request.getfixturevalue("pg_server"), "carefile_webforms")
    srv = LiveServer.prepare(tmp_path_factory.mktemp(f"shipped-{request.param}"), settings)
    srv.backend = request.param  # type: ignore[attr-defined]
    try:
        srv.cli("init", timeout=180)
        from app.services.identity import users

        rt = srv.app().extensions["carefile"]
        with rt.db.write() as s:
            users.create_user(s, project_id=1, username=USER, role="coordinator", password=PASSWORD,
                              realm=rt.config["DIGEST_REALM"], regions=[REGION])
            users.create_user(s, project_id=1, username=PROVINCE_USER, role="coordinator", password=PASSWORD,
                              realm=rt.config["DIGEST_REALM"], regions=[REGION[:2]])
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("picture") / "paper-form.png"
    path.write_bytes(PICTURE)
    return path


@pytest.fixture(scope="module")
def corrected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("picture") / "corrected.png"
    path.write_bytes(CORRECTED)
    return path


@pytest.fixture
def open_page(browser: Any, server: LiveServer) -> Iterator[Callable[..., Any]]:
    """open_page(width, lang, user) → a page signed in as the coordinator (of 城关区 unless `user` says
    another), the site in `lang` (zh or en)."""
    contexts: list[Any] = []

    def do(width: int = 1280, lang: str = "zh", user: str = USER) -> Any:
        context = browser.new_context(viewport={"width": width, "height": 900}, base_url=server.url,
                                      locale="zh-CN" if lang == "zh" else "en-US")
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.outside, page.js_errors, page.csp = [], [], []
        page.on("request", lambda r: page.outside.append(r.url)
                if not r.url.startswith((server.url, "data:", "blob:")) else None)
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        page.on("console", lambda m: page.csp.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto("/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORD)
        page.click("form button.primary")
        page.wait_for_url(f"{server.url}/")
        page.locator(f"header button[name=lang][value={lang}]").click()  # the site's language switch (kept
        page.wait_for_url(f"{server.url}/")                              # for the user: set it every time)
        return page

    yield do
    for context in contexts:
        context.close()


# ------------------------------------------------------------------------------------ filling


def wait_loaded(page: Any) -> None:
    """The renderer finished loading the form; a load failure fails the test with the renderer's message."""
    page.wait_for_selector(".form-initialization-status.ready, .form-initialization-status.error", state="attached")
    if page.locator(".form-initialization-status.error").count():
        raise AssertionError("the renderer could not load the form: "
                             + page.locator(".form-load-failure-dialog").inner_text())


def fill(page: Any, picture: Path, *, replace_images: int = 0) -> dict[str, Any]:
    """Answer the open form (see the module doc); returns the filler's last report and the uploads made."""
    wait_loaded(page)
    skip: list[str] = []
    uploaded: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    for _ in range(30):
        report = page.evaluate(FILLER, {"skip": skip, "replace_images": replace_images})
        assert report["status"] == "ok", report
        # an answer the renderer throws on (e.g. an expression it cannot evaluate once a question has a value)
        assert report["errors"] == [], report["errors"]
        skip = report["tried"]
        if not report["uploads"]:
            break
        for up in report["uploads"]:
            container = page.locator(f"[id='{up['nodeId']}_container']")
            preview = container.locator(".preview-captured-image img")
            before = preview.get_attribute("src") if preview.count() else None
            container.locator("input[type=file]").last.set_input_files(str(picture))
            # what the user sees once the picture is attached: its (new) preview under the question
            page.wait_for_function("([sel, old]) => { const img = document.querySelector(sel);"
                                   " return img != null && img.getAttribute('src') !== old; }",
                                   arg=[f"[id='{up['nodeId']}_container'] .preview-captured-image img", before])
            uploaded.append(up)
        replace_images = 0
    assert report["unanswerable"] == [], f"required questions the filler could not answer: {report['unanswerable']}"
    assert report["violations"] == [], f"the form is not valid yet: {report['violations']}"
    report["uploaded"] = uploaded
    return report


def press_send(page: Any) -> None:
    page.locator(".odk-form .footer button").last.click()


def check_page(page: Any) -> None:
    assert page.outside == [], f"requests to other hosts: {page.outside}"
    assert page.js_errors == [], page.js_errors
    # Refused by the page's Content-Security-Policy: nothing, but the image resizer's (pica) probe whether a
    # worker made from a data: URL can use OffscreenCanvas; refused, it resizes in its blob: worker instead.
    refused = [m for m in page.csp if not m.startswith("Creating a worker from 'data:text/javascript")]
    assert refused == [], refused


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{page.viewport_size['width']}.png"), full_page=True)
    if page.viewport_size["width"] <= 375:
        sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1], f"{name} scrolls sideways: {sizes}"


# ------------------------------------------------------------------------------------ the database


def rt_of(server: LiveServer) -> Any:
    app = getattr(server, "_inproc", None)
    if app is None:
        app = server._inproc = server.app()  # type: ignore[attr-defined]
    return app.extensions["carefile"]


def stored_files(server: LiveServer, files: list[Any]) -> dict[str, bytes]:
    rt = rt_of(server)
    out = {}
    for f in files:
        assert f.blob_key is not None, f"{f.name} was not stored"
        with rt.store.open(f.blob_key) as stream:
            out[f.name] = stream.read()
    return out


def check_pictures(files: dict[str, bytes], count: int) -> None:
    """Every attached picture arrived, shrunk by the renderer to the form's max-pixels (≤ 1024)."""
    assert len(files) == count, sorted(files)
    for name, data in files.items():
        w, h = image_size(data)
        assert max(w, h) <= 1024 and (w, h) != (1200, 900), f"{name} is {w} x {h}"


def record(server: LiveServer, instance_id: str) -> tuple[Any, Any, dict[str, bytes]]:
    """The submission and its current version (with its files) stored under this instance id."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from app.models import Submission, SubmissionVersion

    with rt_of(server).db.session() as s:
        version = s.scalar(select(SubmissionVersion).options(selectinload(SubmissionVersion.attachments))
                           .where(SubmissionVersion.instance_id == instance_id))
        assert version is not None, f"no record with instanceID {instance_id}"
        sub = s.get(Submission, version.submission_id)
        current = s.scalar(select(SubmissionVersion).options(selectinload(SubmissionVersion.attachments))
                           .where(SubmissionVersion.submission_id == sub.id, SubmissionVersion.current))
        s.expunge_all()
    return sub, current, stored_files(server, current.attachments)


def latest_record(server: LiveServer, form_id: str) -> str | None:
    from sqlalchemy import select

    from app.models import Form, Submission

    with rt_of(server).db.session() as s:
        return s.scalar(select(Submission.instance_id).join(Form, Form.id == Submission.form_id)
                        .where(Form.xml_form_id == form_id).order_by(Submission.id.desc()).limit(1))


def children_on_file(server: LiveServer) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from app.models import Entity

    with rt_of(server).db.session() as s:
        return [dict(e.data or {}, label=e.label) for e in s.scalars(select(Entity).where(Entity.deleted_at.is_(None)))]


def fill_on_fill_page(page: Any, server: LiveServer, form_id: str, picture: Path,
                      shot_name: str | None = None) -> tuple[str, dict[str, Any]]:
    page.goto(f"/forms/{form_id}/fill")
    report = fill(page, picture)
    if shot_name:
        shot(page, shot_name)  # filled in, pictures attached, before sending
        # in Chinese, dates read 2026-12-07 (not PrimeVue's default 12/07/2026)
        dates = page.locator("#odk-form .p-datepicker input").evaluate_all("els => els.map(e => e.value)")
        assert dates and all(len(d) == 10 and d[4] == d[7] == "-" for d in dates), dates
    press_send(page)
    page.wait_for_selector("body[data-saved], #fill-status.error")
    assert page.locator("body[data-saved]").count() == 1, page.inner_text("#fill-status")
    return page.locator("body").get_attribute("data-saved"), report


def ensure_child(server: LiveServer, open_page: Callable[..., Any], picture: Path, form_id: str) -> None:
    """The child the follow-up forms pick: registered (all of them), identified as needing care (the
    assessment and referral forms list only such children). In a whole run the fill-page tests of the
    first two forms made it already; a test run on its own makes it here, through the fill page."""
    needed = ["child_registration"] if form_id in ("identification", "visit_record") else \
        ["child_registration", "identification"] if form_id in ("assessment", "referral_followup") else []
    children = children_on_file(server)
    have = {"child_registration": bool(children),
            "identification": any(c.get("status") in ("watch", "refer", "urgent") for c in children)}
    missing = [f for f in needed if not have[f]]
    if missing:
        page = open_page(1280)
        for f in missing:
            fill_on_fill_page(page, server, f, picture)


# ------------------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("form_id", FORMS)
def test_fill_page(open_page: Callable[..., Any], server: LiveServer, picture: Path, form_id: str) -> None:
    """Paper entry of each shipped form at phone width, in Chinese; the record is stored with its pictures."""
    ensure_child(server, open_page, picture, form_id)
    children_before = len(children_on_file(server))
    page = open_page(375)
    instance_id, report = fill_on_fill_page(page, server, form_id, picture,
                                            f"shipped-fill-{form_id}-{server.backend}")  # type: ignore[attr-defined]
    assert report["uploaded"], "every shipped form asks for at least one signature"
    assert page.locator("#odk-form .footer button").last.inner_text().strip() == "提交"
    check_page(page)

    sub, version, files = record(server, instance_id)
    check_pictures(files, len(report["uploaded"]))
    assert sub.region_code.startswith(REGION)
    if form_id == "child_registration":  # the consent was given: the child is on file, masked
        children = children_on_file(server)
        assert len(children) == children_before + 1
        assert "*" in children[-1]["label"]


def test_follow_up_forms_found_the_child(server: LiveServer) -> None:
    """The update forms picked the registered child from children.csv: its file moved on."""
    from sqlalchemy import select

    from app.models import Entity

    if latest_record(server, "referral_followup") is None:
        pytest.skip("runs after test_fill_page")
    with rt_of(server).db.session() as s:
        updated = [e for e in s.scalars(select(Entity)) if (e.data or {}).get("last_followup")]
    assert updated, "no child was updated by the referral form"


@pytest.mark.parametrize("form_id", FORMS)
def test_try_page(open_page: Callable[..., Any], server: LiveServer, picture: Path, form_id: str) -> None:
    """A draft of each shipped form, tried in the browser: a test submission with its pictures."""
    from sqlalchemy import select

    from app.models import DraftSubmission, Form
    from app.services import forms

    ensure_child(server, open_page, picture, form_id)
    rt = rt_of(server)
    with rt.db.write() as s:
        if forms.get_draft(s, s.scalar(select(Form).where(Form.xml_form_id == form_id))) is None:
            path = ROOT / "xlsforms" / f"{form_id}.xlsx"
            forms.create_draft(s, rt.store, project_id=1, key=rt.config["SECRET_KEY"], data=path.read_bytes(),
                               filename=path.name, validate=False)
    page = open_page(1280, user=PROVINCE_USER)
    page.goto(f"/forms/{form_id}/draft")
    page.wait_for_selector("#renderer-check:not([data-state=checking])")
    assert page.locator("#renderer-check").get_attribute("data-state") == "ok", page.inner_text("#renderer-check")
    page.click(f"a[href='/forms/{form_id}/draft/try']")
    page.wait_for_url(f"**/forms/{form_id}/draft/try")
    report = fill(page, picture)
    press_send(page)
    page.wait_for_selector("#try-status:not([hidden])")
    assert page.locator("body[data-submitted='1']").count() == 1, page.inner_text("#try-status")
    check_page(page)

    with rt.db.session() as s:
        draft = forms.get_draft(s, s.scalar(select(Form).where(Form.xml_form_id == form_id)))
        [test] = s.scalars(select(DraftSubmission).where(DraftSubmission.draft_id == draft.id)).all()
        files = list(test.files)
        s.expunge_all()
    check_pictures(stored_files(server, files), len(report["uploaded"]))


@pytest.mark.parametrize("form_id", FORMS)
def test_edit_page(open_page: Callable[..., Any], server: LiveServer, picture: Path, corrected: Path,
                   form_id: str) -> None:
    """Each shipped form's record edited in the browser: one picture replaced, the others kept."""
    page = open_page(1280)
    instance_id = latest_record(server, form_id)
    if instance_id is None:  # run on its own: make the record first
        ensure_child(server, open_page, picture, form_id)
        fill_on_fill_page(page, server, form_id, picture)
        instance_id = latest_record(server, form_id)
    sub, before, old_files = record(server, instance_id)
    page.goto(f"/submissions/{form_id}/{instance_id}/edit")
    report = fill(page, corrected, replace_images=1)
    assert len(report["uploaded"]) == 1
    press_send(page)
    page.wait_for_url(f"**/submissions/{form_id}/{instance_id}")
    check_page(page)

    _, after, new_files = record(server, instance_id)
    assert after.id != before.id and after.deprecated_id == before.instance_id
    assert set(new_files) >= set(old_files) - {report["uploaded"][0]["value"]}
    replaced = set(new_files) - set(old_files)
    assert len(replaced) == 1, (sorted(old_files), sorted(new_files))
    check_pictures({n: new_files[n] for n in replaced}, 1)
    new_picture = new_files[replaced.pop()]
    assert new_picture not in old_files.values()  # the corrected picture, not a copy of an old one
    assert len(new_files) == len(old_files)  # the pictures not replaced are kept


BROKEN_MD = """
| settings |
| | form_id | version | form_title |
| | date_check | {version} | Date check |

| survey |
| | type | name | label | calculation |
| | date | birth | Birth date | |
| | calculate | age_days | | {expr} |
| | note | show | Age: ${{age_days}} days | |
"""


def test_draft_page_names_the_expression_the_renderer_refuses(open_page: Callable[..., Any],
                                                              server: LiveServer) -> None:
    """A draft with decimal-date-time(${birth}) (a date question, not a string: ODK Collect takes it, Web
    Forms 0.22 does not load the form): the draft page says so before publishing, naming the expression."""
    from app.services import forms

    rt = rt_of(server)
    with rt.db.write() as s:
        forms.publish_form(s, rt.store, project_id=1, filename="date_check.md", validate=False,
                           data=BROKEN_MD.format(version="1", expr="decimal-date-time(string(${birth}))").encode())
        forms.create_draft(s, rt.store, project_id=1,
                           key=rt.config["SECRET_KEY"], filename="date_check.md", validate=False,
                           data=BROKEN_MD.format(version="2", expr="decimal-date-time(${birth})").encode())
    page = open_page(375, user=PROVINCE_USER)
    page.goto("/forms/date_check/draft")
    page.wait_for_selector("#renderer-check[data-state=failed]", timeout=60_000)
    text = page.inner_text("#renderer-check")
    assert "Expected a NUMBER or STRING evaluation type for date-time conversion" in text
    assert "浏览器表单渲染器（ODK Web Forms）无法打开此草稿" in text
    assert page.inner_text("#renderer-culprit") == "decimal-date-time(${birth})"
    assert "${age_days} 的 calculate" in text
    shot(page, f"draft-renderer-error-{server.backend}")  # type: ignore[attr-defined]
    assert page.outside == [] and page.js_errors == []

    # the same form, fixed: the page says it opens
    with rt.db.write() as s:
        forms.create_draft(s, rt.store, project_id=1,
                           key=rt.config["SECRET_KEY"], filename="date_check.md", validate=False,
                           data=BROKEN_MD.format(version="2", expr="decimal-date-time(string(${birth}))").encode())
    page.goto("/forms/date_check/draft")
    page.wait_for_selector("#renderer-check[data-state=ok]")
    assert "草稿可以在浏览器表单渲染器中打开" in page.inner_text("#renderer-check")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_renderer_speaks_the_sites_language(open_page: Callable[..., Any], server: LiveServer, lang: str) -> None:
    """The form's questions and the renderer's own buttons and messages follow the site's language. Sending
    the empty form makes the renderer list what is missing."""
    import re

    page = open_page(375, lang)
    page.goto("/forms/visit_record/fill")
    assert page.locator("html").get_attribute("lang") == ("zh-Hans" if lang == "zh" else "en")
    wait_loaded(page)
    press_send(page)
    page.locator(".form-error-message").wait_for()
    form = page.inner_text("#odk-form")
    button = page.locator(".odk-form .footer button").last.inner_text().strip()
    banner = page.locator(".form-error-message li").first.inner_text().strip()
    if lang == "zh":
        shot(page, f"shipped-fill-errors-zh-{server.backend}")  # type: ignore[attr-defined]
        assert button == "提交"
        assert re.fullmatch(r"\d+ 道题有错误。", banner), banner
        assert "走访人身份" in form and "Visitor's role" not in form  # the form's Chinese translation
        assert "此题必须回答" in form and "选择图片" in form and "技术支持" in form
        for english in ("Send", "Choose image", "Take picture", "with error", "Condition not satisfied", "Powered by"):
            assert english not in form, english
    else:
        assert button == "Send"
        assert re.fullmatch(r"\d+ questions with errors\.", banner), banner
        assert "Visitor's role" in form and "走访人身份" not in form  # the form's English translation
        assert "Condition not satisfied: required" in form and "Choose image" in form
    check_page(page)
