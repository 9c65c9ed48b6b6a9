"""Words, not codes (issue 17, item 5), on every page of the realistic county: each page of the website's
URL map (tests/support/world_pages.py), as each role that may open it, in Chinese, fails when it shows
one of the forms' option codes where its words belong, or English the interface should have translated
(tests/support/words.py)."""
from __future__ import annotations

from typing import Any

import pytest
from lxml import html

from tests.support.cli import cli_runner
from tests.support.words import problems
from tests.support.world import AppTarget, Website, build_world
from tests.support.world_pages import FILE_ROUTES, pages

HIDDEN = "//script|//style|//code|//pre|//textarea|//head|//template|//noscript|//*[@hidden]"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "EXPORT_WORKER": "false"}


def visible_text(body: bytes) -> str:
    doc = html.fromstring(body)
    for node in doc.xpath(HIDDEN):
        node.drop_tree()
    for node in doc.xpath("//*[self::td or self::th or self::dt or self::dd or self::li or self::p or self::option]"):
        node.tail = " " + (node.tail or "")  # cells and items read apart, as on the screen
    return " ".join(doc.text_content().split())


def test_every_chinese_page_shows_words_not_codes(app: Any, app_config: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    target = AppTarget(app, cli_runner(app_config, monkeypatch, capsys))
    world = build_world(target, children=40, wait_exports=False)
    users = set(world.users) | {"dolma", "admin"}
    found: list[str] = []
    checked: set[str] = set()
    sites: dict[str, Website] = {}
    files: set[str] = set()  # endpoints that answered a file: downloads, not pages
    for page in pages(app, world):
        if page.endpoint in files:
            continue
        if page.user == "anonymous":
            resp = target.client().request("GET", page.url, headers={"Accept-Language": "zh-CN"})
        else:
            site = sites.get(page.user) or sites.setdefault(page.user, Website(target.client(),
                                                                                world.users[page.user]))
            resp = site.get(page.url)
        if resp.status_code == 404 and page.endpoint in FILE_ROUTES:
            continue  # the world uploads no form files
        if resp.status_code == 409 and page.endpoint == "web.exports_download":
            continue  # a file, and in-process no worker makes it
        assert resp.status_code == 200, (page.url, page.user, resp.status_code)
        if not resp.headers.get("Content-Type", "").startswith("text/html"):
            files.add(page.endpoint)
            continue
        checked.add(page.endpoint)
        found += [f"{page.url} as {page.user}: {p}" for p in problems(visible_text(resp.content), users)]
    # not vacuous: the pages full of stored answers were read
    assert {"web.children_view", "web.submissions_view", "web.held_index", "web.audit_index",
            "web.children_duplicates", "web.reports", "web.dashboard"} <= checked
    assert not found, f"{len(found)} problems:\n" + "\n".join(found)


def test_the_check_finds_codes_and_english() -> None:
    assert problems("状态 refer 风险 green") == ["code 'refer'", "code 'green'"]
    assert problems("请点击 Send the form") and problems("结果 Not assessed")
    assert problems("困境儿童走访访谈记录 Visit and interview record · ODK Collect · visit_record · dolma",
                    {"dolma"}) == []
