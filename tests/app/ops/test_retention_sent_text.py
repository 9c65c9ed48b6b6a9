"""Retention removes a select-multiple's text as submitted (kept for CSV exports) with its answer."""
from __future__ import annotations

from app.services.ops.retention import _strip
from forms.submission import SENT_TEXT


def test_the_text_as_sent_goes_with_its_answer() -> None:
    values = {"colors": ["a", "b"], "grp/names": ["c"], "note": "x",
              SENT_TEXT: {"colors": " a  b", "grp/names": "c "}}
    assert _strip(values, {"grp/names"}) == ({"colors": ["a", "b"], "note": "x", SENT_TEXT: {"colors": " a  b"}}, 1)
    assert _strip(values, {"colors", "grp/names"}) == ({"note": "x"}, 2)
    assert _strip(values, {"note"}) == ({"colors": ["a", "b"], "grp/names": ["c"], SENT_TEXT: values[SENT_TEXT]}, 1)
