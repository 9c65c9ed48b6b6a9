"""What a Chinese page must not show: the forms' option codes (left_behind, green, refer …) where their words
belong, and English the interface should have translated.

`problems(text, ...)` takes the text a person sees (scripts, styles and <code> left out: a code set in <code>
is shown as a code on purpose, like a form id or an instance id) and names each code and each English
phrase found. Shared by tests/app/web/test_world_words.py (every page of the realistic county, in-process, both
databases) and anything else that has a page's visible text.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import openpyxl

from app.i18n import catalog
from app.services.children import REFERRAL_STATUSES, RISK_LEVELS, STATUSES
from app.services.children.casework import CLOSE_REASONS

SHIPPED = Path(__file__).resolve().parents[2] / "xlsforms"

# Names of products and formats, the same in every language.
PROPER = ("ODK Collect", "ODK Web Forms", "ODK Central", "Web Forms", "Power BI", "CSV ZIP", "CareFile",
          "English")  # the language switch names each language in its own words


@lru_cache(maxsize=1)
def shipped_forms() -> tuple[frozenset[str], tuple[str, ...], frozenset[str]]:
    """The shipped XLSForms' option codes, titles and form ids."""
    codes: set[str] = set()
    titles: list[str] = []
    ids: set[str] = set()
    for path in sorted(SHIPPED.glob("*.xlsx")):
        book = openpyxl.load_workbook(path, read_only=True)
        for sheet, column, out in (("choices", "name", codes), ("settings", "form_id", ids)):
            if sheet in book.sheetnames:
                rows = list(book[sheet].iter_rows(values_only=True))
                at = [str(h) for h in rows[0]].index(column)
                out.update(str(r[at]) for r in rows[1:] if r[at] is not None)
        rows = list(book["settings"].iter_rows(values_only=True))
        titles.append(str(rows[1][[str(h) for h in rows[0]].index("form_title")]))
    return frozenset(codes), tuple(titles), frozenset(ids)


def codes() -> frozenset[str]:
    """Codes a page should show in words: the shipped forms' options and the care file's own values."""
    options, _, _ = shipped_forms()
    own = {*STATUSES, *RISK_LEVELS, *REFERRAL_STATUSES, *CLOSE_REASONS}
    return frozenset(c for c in options | own if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", c))


@lru_cache(maxsize=1)
def english_sentences() -> tuple[str, ...]:
    """The interface's own English texts of two words or more (a page showing one was not translated)."""
    return tuple(sorted((k for k in catalog() if re.search(r"[A-Za-z]{2,} [A-Za-z]{2,}", k) and "{" not in k),
                        key=len, reverse=True))


# Technical names, the same in every language.
TERMS = frozenset(("ODK", "XForm", "XForms", "XLSForm", "XLSForms", "OData", "API", "CSV", "ZIP", "XLSX", "XML",
                   "JSON", "GeoJSON", "QR", "MD5", "PDF", "URL", "HTTP", "HTTPS", "ID", "PIN", "UTC", "S3"))
_WORD = r"[A-Za-z][A-Za-z0-9_]+"
ENGLISH_RUN = re.compile(rf"(?<![A-Za-z0-9_.:/-]){_WORD}(?:[ ,'’]+{_WORD})+(?![A-Za-z0-9_-])")
TOKEN = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z][A-Za-z0-9_]*(?![A-Za-z0-9_])")


def problems(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """Codes and English in a Chinese page's visible text. `allowed`: words that are data, not interface
    (form ids, user names)."""
    _, titles, ids = shipped_forms()
    for fixed in (*titles, *PROPER):  # the forms' own titles are data; product names stay as they are
        text = text.replace(fixed, " ")
    fine = set(allowed) | ids
    found = [f"code {tok!r}" for tok in dict.fromkeys(TOKEN.findall(text)) if tok in codes() and tok not in fine]
    for sentence in english_sentences():
        if sentence in text:
            found.append(f"untranslated {sentence!r}")
            text = text.replace(sentence, " ")
    found += [f"English {run!r}" for run in dict.fromkeys(ENGLISH_RUN.findall(text))
              if not set(run.replace(",", " ").split()) <= fine | TERMS]
    return found
