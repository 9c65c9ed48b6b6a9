"""Words, not codes (issue 17, item 5): stored answers show their choice labels in the page's language,
forms by title, audit actions in words."""
from __future__ import annotations

import ast
import json
import re
import uuid
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from app.services import audit
from tests.app.conftest import PASSWORD, submission_body
from tests.app.children.test_child_directory import REG_MD, reg_xml
from tests.app.web_helpers import Browser
from tests.support.digest_client import DigestClient

ROOT = Path(__file__).resolve().parents[3]


def _catalog() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted((ROOT / "app" / "translations").glob("*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def _recorded_details() -> set[str]:
    """Every detail (keyword argument, or key of a literal **{...}) passed to audit.record / audit_unmasked."""
    found: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in ("record", "audit_unmasked"):
                continue
            for kw in node.keywords:
                if kw.arg is not None:
                    found.add(kw.arg)
                elif isinstance(kw.value, ast.Dict):
                    found |= {k.value for k in kw.value.keys if isinstance(k, ast.Constant)}
    return found - {"target", "ip", "username", "user"}


def test_every_recorded_detail_has_words_in_both_languages() -> None:
    details = _recorded_details()
    assert {"reason", "channel", "from", "to", "unmasked"} <= details  # the scan finds them
    assert details <= set(audit.DETAILS), details - set(audit.DETAILS)
    zh = _catalog()
    assert not [words for words in audit.DETAILS.values() if words not in zh]


def _recorded_actions() -> set[str]:
    """Every literal action name passed to audit.record / access.audit_unmasked anywhere in app/."""
    found: set[str] = set()
    for path in (ROOT / "app").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in ("record", "audit_unmasked"):
                continue
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and re.fullmatch(
                        r"[a-z_]+(\.[a-z_]+)*", arg.value) and ("." in arg.value or arg.value == "logout"):
                    found.add(arg.value)
    return found


def test_every_recorded_action_has_words_in_both_languages() -> None:
    recorded = _recorded_actions()
    assert {"login.ok", "child.merge", "child.view"} <= recorded  # the scan finds the calls
    assert recorded <= set(audit.ACTIONS), recorded - set(audit.ACTIONS)
    zh = _catalog()
    untranslated = [words for words in audit.ACTIONS.values() if words not in zh]
    assert not untranslated


def test_an_action_without_words_is_refused(rt: Any) -> None:
    with rt.db.write() as s, pytest.raises(audit.UnknownAction):
        audit.record(s, None, "something.new")


@pytest.fixture
def child(app: Any, make_user: Any, publish: Any) -> str:
    publish(REG_MD, "reg.md")
    make_user("dolma", "collector", ["540102"])
    make_user("coord", "coordinator", ["540102"])
    make_user("admin1", "admin")
    uid = str(uuid.uuid4())
    phone = DigestClient(app.test_client(), "dolma", PASSWORD)
    resp = phone.post("/v1/projects/1/submission", content_type="multipart/form-data",
                      data=submission_body(reg_xml("uuid:w1", uid, "扎西次仁", "", "卓玛", village="540102002001")))
    assert resp.status_code == 201
    return uid


def zh_browser(app: Any, name: str) -> Browser:
    b = Browser(app)
    assert b.login(name).status_code == 302
    b.get("/")
    assert b.post("/language", {"lang": "zh", "next": "/"}).status_code == 302
    return b


def test_a_childs_file_shows_the_forms_words_for_its_codes(app: Any, child: str) -> None:
    page = unescape(zh_browser(app, "coord").get(f"/children/{child}").get_data(as_text=True))
    assert "男" in page  # gender: male, in the registration form's words
    assert ">male<" not in page and ": male" not in page
    assert "性别" in page


def test_the_audit_log_shows_actions_in_words(app: Any, child: str) -> None:
    zh_browser(app, "coord")
    page = unescape(zh_browser(app, "admin1").get("/audit").get_data(as_text=True))
    assert "登录" in page
    assert re.search(r">\s*login\.ok\s*<", page) is None
