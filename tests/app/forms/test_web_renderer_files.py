"""The renderer's files ship with CareFile; should they be missing from an installation anyway, the fill,
try and draft pages say so (and how to restore them) instead of a page that silently does nothing."""
from __future__ import annotations

import html
from typing import Any

import pytest

from tests.app.forms.test_web_drafts import save_draft
from tests.app.web_helpers import Browser
from tests.support.sample_forms import household_md

MISSING = "The form renderer's files (ODK Web Forms) are missing from this installation."
MISSING_ZH = "本安装缺少表单渲染器（ODK Web Forms）的文件"


def test_the_files_are_there() -> None:
    from app.web.form_drafts import web_forms_vendored

    assert web_forms_vendored()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_pages_say_when_the_renderer_files_are_missing(app: Any, make_user: Any, household: Any,
                                                       monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    make_user("coord", "coordinator", ["54"])  # drafts a form that reaches every collector
    b = Browser(app)
    assert b.login("coord").status_code == 302
    b.get("/")
    assert b.post("/language", {"lang": lang, "next": "/"}).status_code == 302
    save_draft(b, household_md("2"))
    expected = MISSING if lang == "en" else MISSING_ZH
    renderer = {"/forms/household/fill": "vendor/web-forms/index.js", "/forms/household/draft/try":
                "vendor/web-forms/index.js", "/forms/household/draft": "webforms-check.js"}
    for url, script in renderer.items():
        assert script in b.get(url).get_data(as_text=True), url  # the files are there: the page loads the renderer
    monkeypatch.setattr("app.web.fill.web_forms_vendored", lambda: False)
    monkeypatch.setattr("app.web.form_drafts.web_forms_vendored", lambda: False)
    for url in ("/forms/household/fill", "/forms/household/draft/try", "/forms/household/draft"):
        resp = b.get(url)
        page = html.unescape(resp.get_data(as_text=True))
        assert resp.status_code == 200, url
        assert expected in page and "python scripts/vendor_webforms.py" in page, url
        assert "vendor/web-forms/index.js" not in page and "webforms-check.js" not in page, url
