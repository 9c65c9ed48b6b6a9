"""forms.diff: two versions of a shipped care-file form, one changed in a test copy."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest

from forms import compile_xlsform
from forms.diff import Change, diff_xforms

SHIPPED = Path(__file__).resolve().parents[2] / "xlsforms" / "visit_record.xlsx"


def _columns(ws: openpyxl.worksheet.worksheet.Worksheet) -> dict[str, int]:
    return {str(c.value): i + 1 for i, c in enumerate(ws[1]) if c.value}


def _find(ws: openpyxl.worksheet.worksheet.Worksheet, col: int, value: str) -> int:
    for row in range(2, ws.max_row + 1):
        if ws.cell(row, col).value == value:
            return row
    raise AssertionError(f"{value} not found")


def _changed_copy() -> bytes:
    """The shipped visit record with the changes a coordinator might make in Excel."""
    wb = openpyxl.load_workbook(SHIPPED)
    survey, choices, settings = wb["survey"], wb["choices"], wb["settings"]
    cols = _columns(survey)
    name = cols["name"]
    # changed: English label and constraint of visit_date; required off for child_seen
    row = _find(survey, name, "visit_date")
    survey.cell(row, cols["label::English (en)"]).value = "Date of the visit"
    survey.cell(row, cols["constraint"]).value = ". <= today() and . >= date('2020-01-01')"
    survey.cell(row, cols["required"]).value = None
    # changed: the free-text observation is no longer sensitive, and shown for every mode
    row = _find(survey, name, "child_obs")
    survey.cell(row, cols["bind::carefile:sensitive"]).value = None
    survey.cell(row, cols["relevant"]).value = None
    # type: the mode becomes select_multiple
    row = _find(survey, name, "visit_mode")
    survey.cell(row, cols["type"]).value = "select_multiple visit_mode"
    # removed: visit_location; added: next_step (at the end of the form)
    survey.delete_rows(_find(survey, name, "visit_location"))
    last = survey.max_row + 1
    survey.cell(last, cols["type"]).value = "text"
    survey.cell(last, name).value = "next_step"
    survey.cell(last, cols["label::中文 (zh)"]).value = "下一步"
    survey.cell(last, cols["label::English (en)"]).value = "Next step"
    # moved: visit_purpose after visit_mode (swap the two rows' cells)
    a, b = _find(survey, name, "visit_purpose"), _find(survey, name, "visit_mode")
    for c in range(1, survey.max_column + 1):
        va, vb = survey.cell(a, c).value, survey.cell(b, c).value
        survey.cell(a, c).value, survey.cell(b, c).value = vb, va
    # choices: relabel 'other' of role in Chinese, add a role, remove 'psychiatrist'
    ccols = _columns(choices)
    for r in range(2, choices.max_row + 1):
        if choices.cell(r, 1).value == "role" and choices.cell(r, 2).value == "other":
            choices.cell(r, ccols["label::中文 (zh)"]).value = "其他人员"
    choices.delete_rows(next(r for r in range(2, choices.max_row + 1)
                             if choices.cell(r, 1).value == "role" and choices.cell(r, 2).value == "psychiatrist"))
    r = choices.max_row + 1
    choices.cell(r, 1).value, choices.cell(r, 2).value = "role", "police"
    choices.cell(r, ccols["label::中文 (zh)"]).value, choices.cell(r, ccols["label::English (en)"]).value = \
        "派出所民警", "Police officer"
    settings.cell(2, 3).value = "2026112902"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def changes() -> dict[str, Change]:
    old = compile_xlsform(SHIPPED.read_bytes(), SHIPPED.name, validate=False).xform
    new = compile_xlsform(_changed_copy(), "visit_record.xlsx", validate=False).xform
    found = diff_xforms(old, new)
    by_name = {c.name: c for c in found}
    assert len(by_name) == len(found)
    return by_name


def _aspects(change: Change) -> dict[tuple[str, str | None, str | None], tuple[str | None, str | None]]:
    return {(d.aspect, d.language, d.choice): (d.old, d.new) for d in change.details}


def test_only_what_changed_is_listed(changes: dict[str, Change]) -> None:
    kinds = {n: c.kind for n, c in changes.items()}
    # visit_purpose and visit_mode swapped places: one of them is reported as moved (not both)
    moved = kinds.pop("visit_purpose", None) == "moved", changes["visit_mode"].moved
    assert moved in ((True, False), (False, True))
    assert kinds == {
        "visitor_role": "changed", "visit_date": "changed", "visit_mode": "changed",
        "child_obs": "changed", "visit_location": "removed", "next_step": "added",
    }


def test_label_constraint_and_required(changes: dict[str, Change]) -> None:
    got = _aspects(changes["visit_date"])
    assert got[("label", "English (en)", None)] == ("Visit date", "Date of the visit")
    assert got[("constraint", None, None)] == (". <= today()", ". <= today() and . >= date('2020-01-01')")
    assert got[("required", None, None)] == ("yes", "no")
    assert len(got) == 3  # the Chinese label did not change


def test_sensitive_flag_and_relevance(changes: dict[str, Change]) -> None:
    got = _aspects(changes["child_obs"])
    assert got[("sensitive", None, None)] == ("yes", "no")
    old, new = got[("relevant", None, None)]
    assert old is not None and "/data/child_seen" in old and new is None


def test_type_change(changes: dict[str, Change]) -> None:
    assert _aspects(changes["visit_mode"])[("type", None, None)] == ("select_one", "select_multiple")


def test_choices_added_removed_relabelled(changes: dict[str, Change]) -> None:
    got = _aspects(changes["visitor_role"])
    assert got[("choice_added", None, "police")][1] in ("派出所民警", "Police officer")
    assert got[("choice_removed", None, "psychiatrist")][0] in ("精神科医师", "Psychiatrist")
    assert got[("choice_label", "中文 (zh)", "other")] == ("其他", "其他人员")


def test_added_and_removed_carry_labels(changes: dict[str, Change]) -> None:
    assert changes["next_step"].labels["English (en)"] == "Next step"
    assert changes["next_step"].type == "text"
    assert changes["visit_location"].type == "geopoint"
    assert changes["visit_location"].path == "/data/visit_location"


def test_same_form_has_no_changes() -> None:
    xml = compile_xlsform(SHIPPED.read_bytes(), SHIPPED.name, validate=False).xform
    assert diff_xforms(xml, xml) == []


def test_moved_into_another_group() -> None:
    base = """
| settings |
| | form_id | version |
| | g | {v} |
| survey |
| | type | name | label |
{rows}
"""
    old = "| | text | a | A |\n| | begin group | grp | G |\n| | text | b | B |\n| | end group | | |"
    new = "| | begin group | grp | G |\n| | text | a | A |\n| | text | b | B |\n| | end group | | |"
    x1 = compile_xlsform(base.format(v=1, rows=old).encode(), "f.md", validate=False).xform
    x2 = compile_xlsform(base.format(v=2, rows=new).encode(), "f.md", validate=False).xform
    [change] = diff_xforms(x1, x2)
    assert (change.kind, change.name, change.old_path, change.path) == ("moved", "a", "/data/a", "/data/grp/a")
