"""Every page of the website, as every role that may open it, on a phone and on a desktop, in Chinese.

Generated from the URL map (like tests/app/access/test_access_matrix.py), so a new page is covered without
anyone adding it here: every GET rule of the web blueprint, its URL variables taken from a realistic
county (tests/support/world.py: 城关区 after a year of care work, ~200 children, built over HTTP), and
every role the route declares (app/routeaccess.py). A page a role opens must answer 200; what is not
HTML (files, CSV, XLSX, JSON) is skipped by its Content-Type. A page's own GET forms (filters, the
report's county and period) are submitted with what they show, and the result is checked too.

Each page is rendered by one headless Chromium at 375 px (a phone) and 1280 px, signed in as the
role, with the interface in Chinese (zh-Hans: the browser asks for zh-CN, the users never chose a
language). It fails when a person would see the page break:
- the page scrolls sideways (the document is wider than the screen), or a part of it does (a table
  in a scrolling box), or something sticks out past the right edge or is cut off there;
- a table cell holding text is narrower than 44 px (words broken one character per line);
- a chart's labels are smaller than 8 px;
- it shows a form's option code or English the interface should have translated (tests/support/words.py).
Screenshots of every page at 375 px go to tests/artifacts/screenshots/pages/ (gitignored).
"""
from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.chromium import SHOTS as ALL_SHOTS
from tests.e2e.chromium import launch, needs_chromium
from tests.e2e.live import LiveServer
from tests.support import words
from tests.support.world import SHIPPED, LiveTarget, World, build_world
from tests.support.world_pages import FILE_ROUTES, Page, pages

SHOTS = ALL_SHOTS / "pages"
PHONE, DESKTOP = 375, 1280
MIN_CELL = 44  # px: narrower table cells break words one character per line
MIN_CHART_TEXT = 8  # px: the rendered height of a chart label

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, World]]:
    srv = LiveServer.prepare(tmp_path_factory.mktemp("pages"), {"CAREFILE_XLSFORMS_DIR": str(SHIPPED),
                                                                      "CAREFILE_EXPORT_WORKER": "true"})
    srv.cli("init", timeout=180)  # the schema and the five shipped forms, with regions.csv
    srv.start()
    try:
        yield srv, build_world(LiveTarget(srv))
    finally:
        srv.stop()


# -- what a person sees -----------------------------------------------------------------------------

CHECK_JS = """([minCell, minText]) => {
  const W = window.innerWidth, out = [];
  const folded = e => { const d = e.closest('details:not([open])');  // inside a closed <details>, not its summary
    return d !== null && !(e.closest('summary') && e.closest('summary').parentElement === d); };
  const visible = e => { const s = getComputedStyle(e);
    return e.getClientRects().length > 0 && s.visibility !== 'hidden' && s.display !== 'none' && !folded(e); };
  const say = e => {
    const t = (e.innerText || e.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 40);
    const cls = typeof e.className === 'string' ? e.className.trim().split(/\\s+/).filter(Boolean) : [];
    const id = e.id ? '#' + e.id : cls.map(c => '.' + c).join('');
    return `<${e.tagName.toLowerCase()}${id}> "${t}"`; };
  const doc = document.documentElement;
  if (doc.scrollWidth > W + 1) out.push(`the page is ${doc.scrollWidth} px wide: it scrolls sideways`);
  const all = [...document.querySelectorAll('body *')].filter(visible);
  for (const e of all) {
    const s = getComputedStyle(e);
    if (['auto', 'scroll'].includes(s.overflowX) && e.scrollWidth > e.clientWidth + 1)
      out.push(`${say(e)} scrolls sideways (${e.scrollWidth} px in ${e.clientWidth} px)`);
  }
  const sticking = all.filter(e => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && (r.right > W + 1 || r.left < -1); });
  // report the outermost ones only
  for (const e of sticking.filter(e => !sticking.includes(e.parentElement)).slice(0, 5)) {
    const r = e.getBoundingClientRect();
    out.push(`${say(e)} sticks out past the edge of the screen (${Math.round(r.left)}–${Math.round(r.right)} px)`);
  }
  const seen = e => {  // holds text a person sees (not only text hidden for screen readers)
    const walk = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      const r = n.parentElement.getBoundingClientRect();
      if (n.textContent.trim() && r.width > 1 && r.height > 1) return true;
    }
    return false; };
  const narrow = all.filter(e => (e.tagName === 'TD' || e.tagName === 'TH') && e.getBoundingClientRect().width < minCell
                                 && seen(e));
  if (narrow.length)
    out.push(`${narrow.length} table cells under ${minCell} px wide, e.g. ` +
             narrow.slice(0, 3).map(e => `${say(e)} ${Math.round(e.getBoundingClientRect().width)} px`).join(', '));
  const tiny = all.filter(e => e.tagName.toLowerCase() === 'text' && e.closest('svg') && (e.textContent || '').trim()
                               && e.getBoundingClientRect().height < minText);
  if (tiny.length)
    out.push(`${tiny.length} chart labels under ${minText} px high, e.g. ` +
             tiny.slice(0, 3).map(e => `${say(e)} ${e.getBoundingClientRect().height.toFixed(1)} px`).join(', '));
  return out;
}"""

# True once the page has not changed for 0.7 s.
SETTLED_JS = """() => { const n = document.body.innerHTML.length, w = window.__settled || (window.__settled = {n: -1});
  if (w.n !== n) { w.n = n; w.t = performance.now(); return false; }
  return performance.now() - w.t > 700; }"""

# The text a person sees (code set in <code> left out: shown as a code on purpose), for the words check.
SEEN_TEXT_JS = """() => { const out = [], walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const p = n.parentElement, text = n.textContent.trim();
    if (!text || !p || p.closest('script,style,code,pre,textarea,template,noscript')) continue;
    if (!p.getClientRects().length) continue;
    if (getComputedStyle(p).visibility === 'hidden') continue;
    out.push(text); }
  return out.join(' \\n '); }"""

GET_FORMS_JS = """() => [...document.querySelectorAll('main form')]
  .filter(f => (f.getAttribute('method') || 'get').toLowerCase() === 'get')
  .map(f => { const u = new URL(f.action, location.href);
              for (const [k, v] of new FormData(f)) if (typeof v === 'string' && v !== '') u.searchParams.append(k, v);
              return u.pathname + u.search; })"""


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: dict[str, set[str]] = field(default_factory=dict)  # endpoint → users
    skipped: dict[str, str] = field(default_factory=dict)  # url → content type
    slowest: list[tuple[float, str]] = field(default_factory=list)
    seconds: float = 0.0


def sign_in(context: Any, user: str, world: World) -> None:
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", world.users[user].password)
    page.click("form button.primary")
    page.wait_for_url(re.compile(r".*/$"))
    page.close()


def shot_name(url: str, user: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", url).strip("-")[:80] or "home"
    return f"{slug}-{user}-{PHONE}.png"


def visit_all(browser: Any, server: LiveServer, world: World, todo: list[Page]) -> Report:
    report = Report()
    started = time.monotonic()
    shutil.rmtree(SHOTS, ignore_errors=True)  # this run's pages only
    SHOTS.mkdir(parents=True)
    # The administrator first: what answers a file to the administrator is a file for everyone (a
    # manager without the grant gets 403 for a child's photo: not a page, and not this test's business).
    files: set[str] = set()
    users = sorted({p.user for p in todo}, key=lambda u: (u != "admin", u))
    for user in users:
        context = browser.new_context(viewport={"width": PHONE, "height": 800}, locale="zh-CN",
                                      base_url=server.url)
        context.set_default_timeout(15_000)
        if user != "anonymous":
            sign_in(context, user, world)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        queue = [p for p in todo if p.user == user]
        seen: set[str] = set()
        while queue:
            item = queue.pop(0)
            if item.url in seen or item.endpoint in files:
                continue
            seen.add(item.url)
            where = f"{item.url} as {user}" + (f" (the form on {item.from_form})" if item.from_form else "")
            resp = context.request.get(item.url, max_redirects=0)
            ctype = resp.headers.get("content-type", "")
            if resp.status == 200 and not ctype.startswith("text/html"):
                report.skipped[item.url] = ctype.split(";")[0]
                files.add(item.endpoint)
                continue
            if resp.status == 404 and item.endpoint in FILE_ROUTES:
                report.skipped[item.url] = "404: the world has no such file"  # a download, not a page
                files.add(item.endpoint)
                continue
            if resp.status != 200:
                report.problems.append(f"{where}: answered {resp.status}")
                continue
            errors.clear()
            began = time.monotonic()
            page.set_viewport_size({"width": PHONE, "height": 800})
            page.goto(item.url)
            page.wait_for_load_state("load")
            if page.locator("script[type=module]").count():  # pages that build themselves (the form renderer)
                page.wait_for_load_state("networkidle")
                page.wait_for_function(SETTLED_JS, polling=100, timeout=30_000)
            for width in (PHONE, DESKTOP):
                if width != PHONE:
                    page.set_viewport_size({"width": width, "height": 800})
                for problem in page.evaluate(CHECK_JS, [MIN_CELL, MIN_CHART_TEXT]):
                    report.problems.append(f"{where} at {width} px: {problem}")
                if width == PHONE:
                    page.screenshot(path=str(SHOTS / shot_name(item.url, user)), full_page=True)
                    # in words, not codes, and in Chinese (also what scripts drew: the form renderer)
                    for problem in words.problems(page.evaluate(SEEN_TEXT_JS), set(world.users)):
                        report.problems.append(f"{where}: {problem}")
            if errors:
                report.problems.append(f"{where}: script errors {errors[:2]}")
            report.checked.setdefault(item.endpoint, set()).add(user)
            report.slowest.append((time.monotonic() - began, f"{item.url} as {user}"))
            if not item.from_form:  # a page's GET forms, submitted as they are shown (filters, report choice)
                for target in page.evaluate(GET_FORMS_JS):
                    if urlsplit(target).query and target not in seen:
                        queue.append(Page(item.endpoint, target, user, from_form=item.url))
        context.close()
    report.seconds = time.monotonic() - started
    return report


def test_every_page_reads_on_a_phone_and_a_desktop(county: tuple[LiveServer, World]) -> None:
    server, world = county
    app = server.app()
    todo = pages(app, world)
    with launch() as browser:
        report = visit_all(browser, server, world, todo)
    print(f"\n{sum(len(u) for u in report.checked.values())} page × role checks of {len(report.checked)} pages "
          f"in {report.seconds:.0f} s (world built in {world.seconds:.0f} s); skipped (not HTML): "
          f"{sorted(set(report.skipped.values()))}; slowest: "
          + ", ".join(f"{what} {sec:.1f} s" for sec, what in sorted(report.slowest, reverse=True)[:5]))
    # the test is not vacuous: the pages the county's people use most were rendered, as each role
    for endpoint in ("web.dashboard", "web.children", "web.children_view", "web.children_duplicates",
                     "web.reports", "web.submissions_view", "web.users_index", "web.login"):
        assert endpoint in report.checked, f"{endpoint} was not checked"
    assert report.checked["web.children_view"] >= {"coord", "mgr", "mgr_named", "admin"}
    (SHOTS.parent / "pages-problems.txt").write_text("\n".join(report.problems) + "\n", encoding="utf-8")
    assert report.skipped, "no file download was recognised by its content type"
    assert not report.problems, f"{len(report.problems)} problems:\n" + "\n".join(report.problems)
