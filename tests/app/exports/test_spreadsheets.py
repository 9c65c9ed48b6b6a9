"""One spreadsheet-safe writer (issue 19, Build 7): every XLSX/CSV the server writes for people goes through
app/services/spreadsheets.py; place names are checked when loaded."""
from __future__ import annotations

import io
import random
import re
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from openpyxl import load_workbook

from app.errors import Problem
from app.services import regions, spreadsheets
from app.services.reports.county import COLUMNS, report_xlsx

APP = Path(__file__).resolve().parents[3] / "app"
# Files that write CSV for phones (form attachments ODK Collect reads as data, never a spreadsheet: a prefix
# would change what the phone shows), and the export writers whose rows are built by exports/tabular.py
# (guarded by spreadsheets.neutralise through exports/rowcode.py; tests/app/test_exports.py checks the cells).
PHONE_DATA = {"services/regions.py", "services/children/lists.py"}
EXPORT_ROWS = {"services/exports/csvzip.py", "services/exports/parallel.py", "services/exports/xlsx.py"}
WRITERS = re.compile(r"csv\.writer\(|csv\.DictWriter\(|CsvWriter\(|Workbook\(")
GUARDED = re.compile(r"spreadsheets\.(row|cell|neutralise|SafeCsvWriter)\(")


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", " =1", "\u3000=1", "＝1", "﹣1"])
def test_formula_like_cells_are_neutralised(value: str) -> None:
    assert spreadsheets.cell(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "卓玛", "1-2", "a=b", "", 5, -3, 2.5, None, date(2026, 1, 1)])
def test_other_cells_are_written_as_they_are(value: object) -> None:
    assert spreadsheets.cell(value) == value


def test_safe_csv_writer() -> None:
    out = io.StringIO()
    spreadsheets.SafeCsvWriter(out, lineterminator="\n").writerow(["=cmd|' /C calc'!A0", -1, "ok"])
    assert out.getvalue() == "'=cmd|' /C calc'!A0,-1,ok\n"


def test_the_county_report_workbook_runs_no_formula() -> None:
    period = SimpleNamespace(key="2026-01", start=date(2026, 1, 1), end=date(2026, 1, 31))
    counts = dict.fromkeys(COLUMNS, 1)
    report = SimpleNamespace(period=period, county_name="=HYPERLINK(\"http://x\")", county="540102",
                             rows=[SimpleNamespace(name="@SUM(1)", code="540102001", counts=counts)],
                             totals=counts)
    data = report_xlsx(report, ["-header", *COLUMNS], "+title", ["=note"], "total")  # type: ignore[arg-type]
    ws = load_workbook(io.BytesIO(data)).active
    cells = [c for row in ws.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    texts = {c.value for c in cells if isinstance(c.value, str)}
    assert {"'+title", "'=HYPERLINK(\"http://x\")", "'-header", "'@SUM(1)", "'=note"} <= texts


def test_every_spreadsheet_writer_goes_through_the_guard() -> None:
    """A new module writing CSV or XLSX must use app/services/spreadsheets.py (or be listed above, with why)."""
    unguarded = []
    for path in sorted(APP.rglob("*.py")):
        rel = str(path.relative_to(APP))
        text = path.read_text(encoding="utf-8")
        if (WRITERS.search(text) and rel not in PHONE_DATA | EXPORT_ROWS | {"services/spreadsheets.py"}
                and not GUARDED.search(text)):
            unguarded.append(rel)
    assert unguarded == []


@pytest.mark.parametrize("name,why", [
    ("=HYPERLINK(\"http://evil\")", "formula"), ("+1", "formula"), ("@x", "formula"), ("-x", "formula"),
    ("＝1", "formula"), ("<b>城东</b>", "markup"), ("城东<script>", "markup"), ("城\t东", "control"),
    ("城" * 101, "longer"),
])
def test_place_names_are_checked_at_load(tmp_path: Path, name: str, why: str) -> None:
    data = f"code,name\n63,青海省\n6301,西宁市\n630102,\"{name}\"\n".encode()
    with pytest.raises(Problem) as exc:
        regions.load_file(data, tmp_path)
    assert exc.value.status == 400 and "Row 4" in exc.value.message and "630102" in exc.value.message
    assert why in exc.value.message
    assert not (tmp_path / regions.LOADED_SUBDIR / "regions-63.csv").exists()


def test_ordinary_place_names_load(tmp_path: Path) -> None:
    report = regions.load_file("code,name\n63,青海省\n6301,西宁市\n630102,城东区（东关）\n".encode(), tmp_path)
    assert report.counts["province"] == 1


# ---------------------------------------------------------------- CsvWriter: csv.writer's text, faster

_CSV_VALUES = ["", "a", "中文", "a,b", 'a"b', '"', ",", "a\nb", "a\rb", "\r\n", " x ", None, 0, -5, 1.5, 1e20,
               float("nan"), True, False, [1, 2], {"a": 1}, ("t",), "None", "\x00", "'=1", "=1+1", "\u3000", "é"]


def _both(rows: list[list[object]], end: str) -> tuple[str, str]:
    import csv

    from app.services.spreadsheets import CsvWriter

    fast, slow = io.StringIO(), io.StringIO()
    w, ref = CsvWriter(fast, lineterminator=end), csv.writer(slow, lineterminator=end)
    for row in rows:
        w.writerow(row)
        ref.writerow(row)
    return fast.getvalue(), slow.getvalue()


@pytest.mark.parametrize("end", ["\r\n", "\n"])
def test_csv_writer_writes_what_csv_writer_writes(end: str) -> None:
    rnd = random.Random(20261207)
    alphabet = ['a', 'b', '中', ',', '"', '\r', '\n', ' ', '=', '0']
    rows: list[list[object]] = [[], [""], ["a"], [None], [None, None], ["", ""], [1, 2.5]]
    for _ in range(5000):
        width = rnd.choice([1, 2, 3, 5, 40])
        rows.append([rnd.choice(_CSV_VALUES) if rnd.random() < 0.7
                     else "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6))) for _ in range(width)])
    fast, slow = _both(rows, end)
    assert fast == slow
    fast, slow = _both([tuple(r) for r in rows[:500]], end)  # tuples and other iterables too
    assert fast == slow
    from app.services.spreadsheets import CsvWriter

    out = io.StringIO()
    CsvWriter(out).writerows(iter(r) for r in [["a", "b"], ["c,d", None]])
    assert out.getvalue() == 'a,b\r\n"c,d",\r\n'


def test_csv_writer_joins_a_plain_row_without_csv_writer() -> None:
    from app.services.spreadsheets import CsvWriter

    class Refuse:
        def writerow(self, row: object) -> None:
            raise AssertionError(f"csv.writer used for {row!r}")

    out = io.StringIO()
    w = CsvWriter(out)
    w._csv = Refuse()  # type: ignore[assignment]
    w.writerow(["甲", "", None, 3, 2.5, "x y", "=1"])  # formula guard is the caller's (rowcode)
    assert out.getvalue() == "甲,,,3,2.5,x y,=1\r\n"
    with pytest.raises(AssertionError):
        w.writerow(["a,b", "c"])
