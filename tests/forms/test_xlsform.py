"""compile_xlsform: uploads that work, uploads that must be refused with a clear reason."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from forms import XLSFormError, compile_xlsform, parse_xform
from forms import xlsform as xlsform_module
from tests.forms.conftest import HOUSEHOLD_MD, compile_md, needs_java, xlsx_bytes

SIMPLE_SURVEY = [["type", "name", "label"], ["text", "child_name", "Name"],
                 ["integer", "age", "Age"]]


def _error(md: str, filename: str = "form.md") -> XLSFormError:
    with pytest.raises(XLSFormError) as info:
        compile_xlsform(md.encode("utf-8"), filename, validate=False)
    return info.value


def test_markdown_form_compiles_with_id_version_title_and_warnings() -> None:
    compiled = compile_xlsform(HOUSEHOLD_MD.encode(), "household.md", validate=False)
    assert compiled.form_id == "household"
    assert compiled.version == "2024061001"
    assert compiled.title == "Household visit"
    assert compiled.xform.startswith(b"<?xml")
    assert any("max-pixels" in w for w in compiled.warnings)
    assert compiled.validated is False
    assert "skipped" in compiled.validation_note
    assert compiled.itemsets_csv is None
    # warnings are also located for the UI
    assert any(i.row == 7 and i.sheet == "survey" for i in compiled.warning_issues)


@needs_java
def test_odk_validate_runs_when_java_is_present() -> None:
    compiled = compile_xlsform(HOUSEHOLD_MD.encode(), "household.md")
    assert compiled.validated is True
    assert compiled.validation_note == "ODK Validate passed"


def test_validate_skipped_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsform_module, "_java_available", lambda: False)
    compiled = compile_xlsform(HOUSEHOLD_MD.encode(), "household.md")
    assert compiled.validated is False
    assert compiled.validation_note == "ODK Validate skipped: Java not found"
    with pytest.raises(XLSFormError, match="Java"):
        compile_xlsform(HOUSEHOLD_MD.encode(), "household.md", validate=True)


def test_xlsx_workbook_compiles_and_form_id_defaults_to_filename() -> None:
    data = xlsx_bytes({"survey": SIMPLE_SURVEY})
    compiled = compile_xlsform(data, "child_intake.xlsx", validate=False)
    assert compiled.form_id == "child_intake"
    assert compiled.version == ""  # no version in settings: left for the app to decide
    assert parse_xform(compiled.xform).root == "data"


def test_filename_with_spaces_gives_usable_form_id() -> None:
    data = xlsx_bytes({"survey": SIMPLE_SURVEY})
    compiled = compile_xlsform(data, "Child intake (v2).xlsx", validate=False)
    assert compiled.form_id == "Child_intake_v2"


def test_xlsx_error_row_matches_excel_row_even_with_blank_rows() -> None:
    data = xlsx_bytes({"survey": [["type", "name", "label"], ["text", "a", "A"], [],
                                  ["text", "a", "again"]]})
    with pytest.raises(XLSFormError) as info:
        compile_xlsform(data, "f.xlsx", validate=False)
    issue = info.value.issues[0]
    assert (issue.sheet, issue.row) == ("survey", 4)
    assert "'a'" in issue.message and "unique" in issue.message


def test_unknown_question_type_is_located() -> None:
    err = _error("""
| survey |
| | type | name | label |
| | text | a | A |
| | txet | b | B |
""")
    issue = err.issues[0]
    assert (issue.sheet, issue.row) == ("survey", 3)
    assert "txet" in issue.message
    assert "row 3" in str(err)


def test_missing_choices_list_names_choices_sheet() -> None:
    err = _error("""
| survey |
| | type | name | label |
| | select_one colours | c | Colour |
""")
    assert err.issues[0].sheet == "choices"
    assert "choices" in err.issues[0].message


def test_list_missing_from_existing_choices_sheet() -> None:
    err = _error("""
| survey |
| | type | name | label |
| | select_one colours | c | Colour |
| choices |
| | list_name | name | label |
| | yn | y | Yes |
""")
    assert "colours" in str(err)


def test_a_survey_row_naming_a_missing_list_is_located_in_the_survey_sheet() -> None:
    """The mistake is the select question's list name in the survey sheet (row 3), not the choices sheet."""
    err = _error("""
| survey |
| | type | name | label |
| | text | a | A |
| | select_one yn | q | Q |

| choices |
| | list_name | name | label |
| | other | a | A |
""")
    assert [(i.sheet, i.row) for i in err.issues] == [("survey", 3)]
    assert str(err).startswith("sheet 'survey', row 3: ")


def test_bad_reference_is_located() -> None:
    err = _error("""
| survey |
| | type | name | label | relevant |
| | text | a | A | |
| | text | b | B | ${nope} = 'x' |
""")
    issue = err.issues[0]
    assert (issue.sheet, issue.row) == ("survey", 3)
    assert "nope" in issue.message
    assert not issue.message.startswith("[row")


def test_duplicate_names_are_located() -> None:
    err = _error("""
| survey |
| | type | name | label |
| | text | a | A |
| | integer | b | B |
| | text | a | A2 |
""")
    assert (err.issues[0].sheet, err.issues[0].row) == ("survey", 4)


def test_duplicate_choice_names_locate_choices_sheet() -> None:
    err = _error("""
| survey |
| | type | name | label |
| | select_one yn | q | Q |
| choices |
| | list_name | name | label |
| | yn | y | Yes |
| | yn | y | Yes again |
""")
    assert (err.issues[0].sheet, err.issues[0].row) == ("choices", 3)


@needs_java
def test_odk_validate_failure_becomes_readable_issue() -> None:
    md = """
| survey |
| | type | name | label | calculation |
| | calculate | a | | ${b} + 1 |
| | calculate | b | | ${a} + 1 |
"""
    with pytest.raises(XLSFormError) as info:
        compile_xlsform(md.encode(), "loop.md", validate=True)
    issue = info.value.issues[0]
    assert issue.message.startswith("ODK Validate:")
    assert "Cycle" in issue.message
    assert "Exception" not in issue.message and "carefile-" not in issue.message
    assert issue.sheet == "survey" and issue.row in (2, 3)


@needs_java
def test_sensitive_column_survives_odk_validate() -> None:
    compiled = compile_xlsform(HOUSEHOLD_MD.encode(), "household.md", validate=True)
    schema = parse_xform(compiled.xform)
    assert schema.field("/data/child_name").sensitive  # type: ignore[union-attr]


def test_author_declared_carefile_namespace_is_kept() -> None:
    md = """
| survey |
| | type | name | label | bind::carefile:sensitive |
| | text | a | A | yes |
| settings |
| | form_id | namespaces |
| | f | carefile="https://carefile.example/xforms" |
"""
    xform = compile_md(md)
    assert xform.count(b"xmlns:carefile=") == 1
    assert parse_xform(xform).field("/data/a").sensitive  # type: ignore[union-attr]


def test_select_one_external_returns_itemsets_csv() -> None:
    md = """
| survey |
| | type | name | label | choice_filter |
| | text | state | State | |
| | select_one_external city | city | City | state=${state} |
| external_choices |
| | list_name | name | label | state |
| | city | bj | Beijing | n |
"""
    compiled = compile_xlsform(md.encode(), "ext.md", validate=False)
    assert compiled.itemsets_csv is not None
    assert b"Beijing" in compiled.itemsets_csv
    names = [a.filename for a in parse_xform(compiled.xform).attachments]
    assert "itemsets.csv" in names


def test_xform_upload_is_returned_unchanged() -> None:
    xform = compile_md(HOUSEHOLD_MD)
    compiled = compile_xlsform(xform, "household.xml", validate=False)
    assert compiled.xform == xform
    assert (compiled.form_id, compiled.version, compiled.title) == \
        ("household", "2024061001", "Household visit")


def test_xml_that_is_not_an_xform_is_refused() -> None:
    with pytest.raises(XLSFormError, match="not an ODK XForm"):
        compile_xlsform(b"<root><a/></root>", "x.xml", validate=False)
    with pytest.raises(XLSFormError, match="well-formed"):
        compile_xlsform(b"<root><a></root>", "x.xml", validate=False)


PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(200)


@pytest.mark.parametrize("data,filename", [
    (PNG, "form.xlsx"),
    (os.urandom(1000), "form.xlsx"),
    (b"type,name,label\ntext,a,A\n", "form.xlsx"),
    (PNG, "form.xls"),
    (b"", "form.xlsx"),
])
def test_non_spreadsheets_are_refused_clearly(data: bytes, filename: str) -> None:
    with pytest.raises(XLSFormError) as info:
        compile_xlsform(data, filename, validate=False)
    text = str(info.value)
    assert "not an Excel workbook" in text and "save it as .xlsx" in text


def test_other_file_types_are_refused() -> None:
    with pytest.raises(XLSFormError, match="cannot read '.pdf'"):
        compile_xlsform(b"%PDF-1.4", "form.pdf", validate=False)


def test_zip_that_is_not_a_workbook_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("word/document.xml", "<w/>")
    with pytest.raises(XLSFormError, match="not an Excel workbook"):
        compile_xlsform(buf.getvalue(), "form.xlsx", validate=False)


def test_truncated_xlsx_is_refused() -> None:
    data = xlsx_bytes({"survey": SIMPLE_SURVEY})
    with pytest.raises(XLSFormError, match="damaged"):
        compile_xlsform(data[: len(data) // 2], "form.xlsx", validate=False)


def test_zip_bomb_is_refused_before_unpacking() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"\0" * (65 * 1024 * 1024))
    data = buf.getvalue()
    assert len(data) < 1024 * 1024  # tiny on disk
    with pytest.raises(XLSFormError, match="expands to 65 MB"):
        compile_xlsform(data, "bomb.xlsx", validate=False)


def test_expanded_size_limit_is_configurable() -> None:
    data = xlsx_bytes({"survey": SIMPLE_SURVEY})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        expanded = sum(i.file_size for i in zf.infolist())
    assert expanded > len(data)
    with pytest.raises(XLSFormError, match="expands"):
        compile_xlsform(data, "form.xlsx", validate=False, max_expanded_bytes=expanded - 1)
    compile_xlsform(data, "form.xlsx", validate=False, max_expanded_bytes=expanded)


def test_damaged_xls_is_refused() -> None:
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"x" * 600
    with pytest.raises(XLSFormError, match="damaged or is not an Excel workbook"):
        compile_xlsform(data, "old.xls", validate=False)


def test_xlsx_renamed_xls_is_still_read() -> None:
    data = xlsx_bytes({"survey": SIMPLE_SURVEY})
    assert compile_xlsform(data, "intake.xls", validate=False).form_id == "intake"


def test_pyxform_crash_is_reported_not_raised() -> None:
    # pyxform 4.5 raises KeyError for select_one_external without choice_filter
    md = """
| survey |
| | type | name | label |
| | select_one_external city | city | City |
| choices |
| | list_name | name | label |
| | yn | y | Y |
| external_choices |
| | list_name | name | label |
| | city | bj | Beijing |
"""
    with pytest.raises(XLSFormError, match="could not convert"):
        compile_xlsform(md.encode(), "ext.md", validate=False)


def test_oversized_upload_is_refused() -> None:
    with pytest.raises(XLSFormError, match="too large"):
        compile_xlsform(b"<h:html/>" + b" " * 2000, "big.xml", max_expanded_bytes=1000)


def test_undeclared_custom_prefix_is_explained() -> None:
    err = _error("""
| survey |
| | type | name | label | bind::foo:bar |
| | text | a | A | x |
""")
    assert "namespaces" in str(err)
