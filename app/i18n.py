"""Chinese (zh-Hans) and English for the web UI.

Source strings are English. Translations live in app/translations/*.json (one file per area,
{"English text": "中文"}), merged at start-up. `t()` translates for the current request's
language; templates call it as `_()`. tests/app/web/test_i18n.py checks every string in the
templates and web modules has a Chinese translation.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import g, has_request_context, request, session

LANGUAGES = {"zh": "中文", "en": "English"}
DEFAULT = "zh"
CATALOG_DIR = Path(__file__).resolve().parent / "translations"


@lru_cache(maxsize=1)
def catalog() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(CATALOG_DIR.glob("*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def current_language() -> str:
    if not has_request_context():
        return DEFAULT
    lang = getattr(g, "lang", None)
    if lang:
        return str(lang)
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    best = request.accept_languages.best_match(["zh", "en"])
    return best or DEFAULT


def t(text: str, **kwargs: Any) -> str:
    out = catalog().get(text, text) if current_language() == "zh" else text
    return out.format(**kwargs) if kwargs else out


def form_label(labels: dict[str, str], lang: str | None = None) -> str:
    """A question's label in the UI language: picks the itext language that matches best."""
    if not labels:
        return ""
    lang = lang or current_language()
    for key, text in labels.items():
        low = key.lower()
        if (lang == "zh" and ("zh" in low or "中文" in key)) or (lang == "en" and ("en" in low or "english" in low)):
            return text
    return labels.get("") or next(iter(labels.values()))
