"""Compile an uploaded XLSForm (or a ready XForm) into the XForm CareFile stores and serves.

Accepted uploads: ``.xlsx``/``.xlsm`` (checked to be a real zip workbook whose expanded
size stays under a limit, so a zip bomb never reaches the spreadsheet reader), ``.xls``,
``.md`` (pyxform's markdown tables, handy in tests) and ``.xml`` (an XForm published
directly: parsed with :func:`forms.xform.parse_xform` and kept byte for byte).

Errors come back as :class:`XLSFormError` whose ``issues`` name the sheet and the row the
user sees in Excel whenever pyxform or ODK Validate tells us.

Questions marked sensitive with the survey column ``bind::carefile:sensitive`` get their
``carefile`` namespace declared here if the author did not declare it (see
:mod:`forms.xform`).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

from lxml import etree

from forms._xml import NS_CAREFILE
from forms.xform import XFormError, parse_xform

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAX_ZIP_MEMBERS = 10_000
# Converting is CPU-bound and done while the uploader waits (≈0.5 ms per survey row and 0.2 ms per
# choice row here; a 30,000-row survey held a worker for 44 s). Real care-file forms have a few
# hundred rows; long lists (villages, schools) belong in a CSV file (select_one_from_file).
MAX_SURVEY_ROWS = 2_000
MAX_CHOICE_ROWS = 10_000
_NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_ROW_PREFIX = re.compile(r"^\s*\[row\s*:\s*(\d+)\]\s*")
_SHEET_ROW = re.compile(r"\b(survey|choices|settings|entities|external_choices)\s+sheet,?\s+"
                        r"row\s+(\d+)", re.I)
_ON_SHEET = re.compile(r"On the '(\w+)' sheet", re.I)
_SHEET_WORD = re.compile(r"\b(survey|choices|settings|entities|external_choices)\b.{0,10}\bsheet",
                         re.I)
_NOT_WORKBOOK = ("This file is not an Excel workbook (.xlsx). Open it in Excel or WPS, "
                 "save it as .xlsx (Excel Workbook) and upload again.")


@dataclass(frozen=True)
class XLSFormIssue:
    """One problem found in an uploaded form, located as precisely as we can."""

    message: str
    sheet: str | None
    row: int | None

    def __str__(self) -> str:
        where = []
        if self.sheet:
            where.append(f"sheet '{self.sheet}'")
        if self.row is not None:
            where.append(f"row {self.row}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True)
class CompiledForm:
    """The result of a successful compile: the XForm bytes plus what we learned."""

    xform: bytes
    form_id: str
    version: str
    title: str
    warnings: list[str]
    validated: bool
    validation_note: str
    itemsets_csv: bytes | None
    warning_issues: list[XLSFormIssue] = field(default_factory=list)


class XLSFormError(Exception):
    """The upload cannot become a form; ``issues`` says what to fix and where."""

    def __init__(self, issues: list[XLSFormIssue] | XLSFormIssue | str) -> None:
        if isinstance(issues, str):
            issues = [XLSFormIssue(issues, None, None)]
        elif isinstance(issues, XLSFormIssue):
            issues = [issues]
        self.issues: list[XLSFormIssue] = list(issues)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues)


def issue_from_message(text: str) -> XLSFormIssue:
    """Turn one pyxform message into an :class:`XLSFormIssue` (sheet/row parsed out)."""
    text = text.strip()
    row: int | None = None
    sheet: str | None = None
    match = _ROW_PREFIX.match(text)
    if match:
        row = int(match.group(1))
        text = text[match.end():]
    found = _SHEET_ROW.search(text)
    if found:
        sheet, row = found.group(1).lower(), int(found.group(2))
    elif on := _ON_SHEET.search(text):
        sheet = on.group(1).lower()
    elif row is not None:
        # pyxform's "[row : N]" counts rows of the survey sheet, even when the message names another sheet
        # ("List name not in choices sheet: yn" is about the select question in survey row N).
        sheet = "survey"
    elif word := _SHEET_WORD.search(text):
        sheet = word.group(1).lower()
    return XLSFormIssue(message=text, sheet=sheet, row=row)


def _sniff(data: bytes, filename: str) -> str:
    """Return pyxform's file type for the upload, or raise XLSFormError."""
    ext = PurePath(filename or "").suffix.lower()
    if data.startswith(_ZIP_MAGIC):
        return ".xlsm" if ext == ".xlsm" else ".xlsx"
    if data.startswith(_OLE_MAGIC):
        return ".xls"
    if ext == ".md":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise XLSFormError("This markdown form is not UTF-8 text.") from err
        return ".md"
    if ext == ".xls":
        raise XLSFormError("This file is not an Excel workbook (.xls). Open it in Excel or "
                           "WPS, save it as .xlsx (Excel Workbook) and upload again.")
    if ext in (".xlsx", ".xlsm", ""):
        raise XLSFormError(_NOT_WORKBOOK)
    raise XLSFormError(f"CareFile cannot read '{ext}' files. Upload the form as an Excel "
                       "workbook (.xlsx) or as an XForm (.xml).")


def _check_zip(data: bytes, limit: int) -> None:
    """Refuse broken zips, non-workbooks and zip bombs before anything unpacks them."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as err:
        raise XLSFormError("This file is damaged or is not an Excel workbook (.xlsx). "
                           "Save it again as .xlsx and upload it.") from err
    if len(infos) > _MAX_ZIP_MEMBERS:
        raise XLSFormError("This workbook contains too many parts to be a form.")
    names = {i.filename for i in infos}
    if "xl/workbook.xml" not in names:
        raise XLSFormError(_NOT_WORKBOOK)
    total = sum(i.file_size for i in infos)
    if total > limit:
        raise XLSFormError(f"This workbook expands to {total // (1024 * 1024)} MB, more than "
                           f"the {limit // (1024 * 1024)} MB allowed. Remove images or unused "
                           "sheets, save it and upload again.")


def _too_many_rows(sheet: str, rows: int, limits: dict[str, int]) -> XLSFormError:
    limit = limits[sheet]
    advice = ("Put long lists such as villages in a CSV file and use select_one_from_file."
              if sheet == "choices" else "Split it into smaller forms.")
    return XLSFormError(XLSFormIssue(
        f"The {sheet} sheet has {rows:,} rows; CareFile accepts at most {limit:,}. {advice}", sheet, None))


def _filled_rows(zf: zipfile.ZipFile, member: str) -> int:
    """Rows with at least one value in a worksheet part, counted while streaming (no cells kept)."""
    count = 0
    with zf.open(member) as stream:
        for _, row in etree.iterparse(stream, events=("end",), tag=f"{_NS_MAIN}row", huge_tree=False,
                                      resolve_entities=False, no_network=True, load_dtd=False):
            if any(c.find(f"{_NS_MAIN}v") is not None or c.find(f"{_NS_MAIN}is") is not None for c in row):
                count += 1
            row.clear()
    return count


def _check_xlsx_rows(data: bytes, limits: dict[str, int]) -> None:
    """Refuse a workbook whose survey or choices sheet is too long before pyxform reads it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            book = etree.fromstring(zf.read("xl/workbook.xml"), etree.XMLParser(resolve_entities=False,
                                                                                 no_network=True))
            rels = etree.fromstring(zf.read("xl/_rels/workbook.xml.rels"), etree.XMLParser(
                resolve_entities=False, no_network=True))
            targets = {r.get("Id"): str(r.get("Target") or "") for r in rels}
            for sheet in book.iter(f"{_NS_MAIN}sheet"):
                name = str(sheet.get("name") or "").strip().lower()
                if name not in limits:
                    continue
                target = targets.get(sheet.get(f"{_NS_REL}id"), "").lstrip("/")
                member = target if target.startswith("xl/") else f"xl/{target}"
                rows = _filled_rows(zf, member) - 1  # the header row
                if rows > limits[name]:
                    raise _too_many_rows(name, rows, limits)
    except XLSFormError:
        raise
    except (KeyError, zipfile.BadZipFile, etree.XMLSyntaxError, OSError, ValueError):
        return  # unusual layout: pyxform reads it, and the rows are counted again after reading


def _form_id_from_filename(filename: str) -> str | None:
    stem = PurePath(filename or "").stem.strip()
    if not stem:
        return None
    cleaned = re.sub(r"[^\w.-]+", "_", stem).strip("_")
    if not cleaned:
        return None
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"_{cleaned}"


def _locate_unknown_type(message: str, survey: list[dict[str, Any]] | None) -> int | None:
    match = re.search(r"Unknown question type '([^']*)'", message)
    if not match or not survey:
        return None
    for index, row in enumerate(survey):
        if str(row.get("type", "")).strip() == match.group(1):
            return index + 2  # header is row 1
    return None


def _declare_carefile_ns(xform: str) -> str:
    """Add xmlns:carefile on the root when pyxform copied carefile: columns undeclared."""
    if "carefile:" not in xform or "xmlns:carefile=" in xform:
        return xform
    return re.sub(r"<h:html\b", f'<h:html xmlns:carefile="{NS_CAREFILE}"', xform, count=1)


def _java_available() -> bool:
    return shutil.which("java") is not None


def _validation_issues(message: str, survey: list[dict[str, Any]] | None) -> list[XLSFormIssue]:
    """Condense ODK Validate's (Java) output into one readable issue, located if we can."""
    noise = ("ODK Validate Errors:", "The following files failed validation:",
             "Result: Invalid", "[Fatal Error]", ">>", "Caused by:", "... ")
    lines: list[str] = []
    for line in message.splitlines():
        line = line.strip()
        if not line or line.startswith(noise) or re.fullmatch(r"\$\{[\w-]+\}(\.xml)?", line) \
                and "carefile-" in line:
            continue
        line = re.sub(r"^(org\.[\w.]+|java\.[\w.]+):\s*", "", line)
        line = re.sub(r"lineNumber: \d+; columnNumber: \d+;\s*", "", line).lstrip(": ")
        if line and line not in lines:
            lines.append(line)
    text = " ".join(lines) or "the form was rejected."
    row = None
    names = {str(r.get("name", "")).strip(): i + 2 for i, r in enumerate(survey or [])}
    for ref in re.findall(r"\$\{([\w.-]+)\}", text):
        if ref in names:
            row = names[ref]
            break
    return [XLSFormIssue(f"ODK Validate: {text}", "survey" if row else None, row)]


def _run_validate(xform: bytes, survey: list[dict[str, Any]] | None) -> list[str]:
    from pyxform.validators.odk_validate import ODKValidateError, check_xform

    fd, path = tempfile.mkstemp(suffix=".xml", prefix="carefile-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(xform)
        return list(check_xform(path))
    except ODKValidateError as err:
        raise XLSFormError(_validation_issues(str(err), survey)) from err
    except OSError as err:
        raise XLSFormError(f"ODK Validate could not run: {err}") from err
    finally:
        os.unlink(path)


def _validate(xform: bytes, validate: bool | None,
              survey: list[dict[str, Any]] | None = None) -> tuple[bool, str, list[str]]:
    if validate is False:
        return False, "ODK Validate skipped: not requested", []
    if not _java_available():
        if validate:
            raise XLSFormError("ODK Validate needs Java, which is not installed on this "
                               "server. Ask the administrator to install Java 8 or newer.")
        return False, "ODK Validate skipped: Java not found", []
    return True, "ODK Validate passed", _run_validate(xform, survey)


def _compile_spreadsheet(data: bytes, filename: str, file_type: str, limits: dict[str, int],
                         form_id_fallback: str | None = None
                         ) -> tuple[str, list[str], bytes | None, list[dict[str, Any]]]:
    from pyxform.errors import PyXFormError
    from pyxform.xls2json_backends import Definition, SupportedFileTypes, get_xlsform
    from pyxform.xls2xform import convert

    warnings: list[str] = []
    # 1. Read the workbook.  Readers (openpyxl, xlrd) raise anything on crafted files.
    try:
        definition = Definition(data=io.BytesIO(data), file_type=SupportedFileTypes(file_type),
                                file_path_stem=form_id_fallback or _form_id_from_filename(filename))
        workbook = get_xlsform(xlsform=definition)
    except PyXFormError as err:
        if "was not recognized as a supported type" not in str(err):
            raise XLSFormError([issue_from_message(str(err))]) from err
        raise XLSFormError(_NOT_WORKBOOK) from err
    except Exception as err:  # noqa: BLE001
        raise XLSFormError("This file is damaged or is not an Excel workbook. Open it in "
                           "Excel or WPS, save it as .xlsx and upload again.") from err
    survey = [dict(r) for r in (workbook.survey or [])]
    for sheet, rows in (("survey", len(survey)), ("choices", len(workbook.choices or []))):
        if rows > limits[sheet]:
            raise _too_many_rows(sheet, rows, limits)
    # 2. Convert.  PyXFormError names sheet and row; other exceptions are pyxform bugs
    #    triggered by unusual forms, still reported rather than crashing the upload.
    try:
        result = convert(xlsform=asdict(workbook), warnings=warnings, validate=False,
                         pretty_print=False)
    except PyXFormError as err:
        message = str(err)
        issue = issue_from_message(message)
        if issue.row is None:
            row = _locate_unknown_type(message, survey)
            if row is not None:
                issue = XLSFormIssue(issue.message, "survey", row)
        raise XLSFormError([issue]) from err
    except Exception as err:  # noqa: BLE001
        raise XLSFormError(f"pyxform could not convert this form ({type(err).__name__}: "
                           f"{err}). Check the survey, choices and settings sheets.") from err
    itemsets = result.itemsets
    itemsets_bytes = itemsets.encode("utf-8") if isinstance(itemsets, str) else itemsets
    return _declare_carefile_ns(result.xform), list(warnings), itemsets_bytes, survey


def compile_xlsform(data: bytes, filename: str, *, validate: bool | None = None,
                    max_expanded_bytes: int = 64 * 1024 * 1024, max_survey_rows: int = MAX_SURVEY_ROWS,
                    max_choice_rows: int = MAX_CHOICE_ROWS, form_id_fallback: str | None = None) -> CompiledForm:
    """Compile an uploaded XLSForm (.xlsx/.xlsm/.xls/.md) or accept an XForm (.xml).

    ``validate=None`` runs ODK Validate when Java is on PATH (else skips and says so in
    ``validation_note``); ``True`` requires it; ``False`` skips it.  Raises
    :class:`XLSFormError` whose ``issues`` carry sheet and row when known.  A survey sheet
    longer than ``max_survey_rows`` or a choices sheet longer than ``max_choice_rows`` is
    refused before conversion (for .xlsx before it is even read), which bounds the time an
    upload holds a worker. ``form_id_fallback`` is the form id when the settings sheet has none, kept
    character for character as pyxform keeps it (Central's ``X-XlsForm-FormId-Fallback``); without it
    the form id is made from the file name.
    """
    limits = {"survey": max_survey_rows, "choices": max_choice_rows}
    ext = PurePath(filename or "").suffix.lower()
    if len(data) > max_expanded_bytes:
        raise XLSFormError("This file is too large to be a form.")
    if ext == ".xml":
        try:
            schema = parse_xform(data)
        except XFormError as err:
            raise XLSFormError(str(err)) from err
        validated, note, extra = _validate(data, validate)
        return CompiledForm(xform=data, form_id=schema.form_id, version=schema.version,
                            title=schema.title, warnings=extra, validated=validated,
                            validation_note=note, itemsets_csv=None)
    file_type = _sniff(data, filename)
    if file_type in (".xlsx", ".xlsm"):
        _check_zip(data, max_expanded_bytes)
        _check_xlsx_rows(data, limits)
    xform_text, warnings, itemsets, survey = _compile_spreadsheet(data, filename, file_type, limits,
                                                                  form_id_fallback)
    xform = xform_text.encode("utf-8")
    try:
        schema = parse_xform(xform)
    except XFormError as err:
        raise XLSFormError(f"pyxform produced an XForm CareFile cannot read: {err}. "
                           "Check custom bind:: or instance:: columns and the settings "
                           "sheet's namespaces.") from err
    validated, note, extra = _validate(xform, validate, survey)
    warnings.extend(extra)
    return CompiledForm(
        xform=xform,
        form_id=schema.form_id,
        version=schema.version,
        title=schema.title,
        warnings=warnings,
        validated=validated,
        validation_note=note,
        itemsets_csv=itemsets,
        warning_issues=[issue_from_message(w) for w in warnings],
    )
