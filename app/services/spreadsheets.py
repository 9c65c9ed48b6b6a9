"""The one spreadsheet-safe writer: every XLSX and CSV the server writes for people to open goes through here.

A cell a spreadsheet could run as a formula gets a leading apostrophe (`neutralise`): Excel and WPS start
formulas with = + - @, also after leading spaces and from their full-width and small forms (typed with
Chinese input methods), and a leading tab, CR or LF hides what follows. Numbers, dates and empty cells are
written as they are. Users see the apostrophe only in the formula bar.

Covered: the exports (CSV zip, `submissions.csv`, XLSX: exports/rowcode.py compiles this guard into its row
functions), the county report's workbook. Not covered, on purpose: the CSV files phones read as form
attachments (the entity lists, regions.csv): ODK Collect reads them as data, never a spreadsheet, and a
prefix would change the labels on the phone; place names are checked when loaded instead (regions.py).
ODK Central writes submission CSVs without this guard; README "Downloads and the API" says why CareFile
differs.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63\ufe6b")
_SPACE = frozenset(chr(c) for c in range(0x3001) if chr(c).isspace())  # every Unicode space (U+3000 is the last)
CHECK_FIRST = FORMULA_START | _SPACE  # first characters worth a closer look (one set test on the hot path)


def neutralise(v: str) -> str:
    """The cell text as it should be written: "'" + v when v could start a formula (v[0] in CHECK_FIRST)."""
    if v[0] in "\t\r\n" or v[0] in FORMULA_START:
        return "'" + v
    rest = v.lstrip()
    return "'" + v if rest and rest[0] in FORMULA_START else v


def cell(v: Any) -> Any:
    """One cell, safe: a string that could start a formula neutralised; anything else as it is."""
    return neutralise(v) if v.__class__ is str and v and v[0] in CHECK_FIRST else v


def row(values: Iterable[Any]) -> list[Any]:
    """A row of cells, each safe (for openpyxl's `append` and csv writers)."""
    return [cell(v) for v in values]


class CsvWriter:
    """csv.writer(out, lineterminator=...) with its default dialect ("excel": comma, double quote, quoting only
    where needed), writing the same text, faster for the rows exports and entity lists write by the million.

    csv.writer looks every character of every cell up in the line terminator with a function call: about a
    third of a CSV export's Python instructions. Most rows need no quoting at all; such a row is exactly its
    cells joined by commas (None as "", other values as str(), which is what csv writes). So a row is joined
    first, and written as it is when the joined text holds no quote, CR or LF and exactly one comma fewer
    than it has cells (no cell holds a comma); any other row is written by csv.writer itself.
    tests/app/exports/test_spreadsheets.py compares both on random rows.
    """

    __slots__ = ("_csv", "_write", "_end")

    def __init__(self, out: Any, lineterminator: str = "\r\n") -> None:
        self._csv = csv.writer(out, lineterminator=lineterminator)
        self._write = out.write
        self._end = lineterminator

    def writerow(self, row: Iterable[Any]) -> Any:
        if row.__class__ is not list and row.__class__ is not tuple:
            row = list(row)
        try:
            line = ",".join(row)  # type: ignore[arg-type]
        except TypeError:  # numbers, None, other values
            line = ",".join([c if c.__class__ is str else "" if c is None else str(c) for c in row])
        if ('"' in line or "\n" in line or "\r" in line or len(row) < 2  # type: ignore[arg-type]
                or line.count(",") != len(row) - 1):  # type: ignore[arg-type]
            return self._csv.writerow(row)
        return self._write(line + self._end)

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeCsvWriter:
    """csv.writer whose rows are made safe first."""

    def __init__(self, out: Any, **kwargs: Any) -> None:
        self._w = csv.writer(out, **kwargs)

    def writerow(self, values: Iterable[Any]) -> Any:
        return self._w.writerow(row(values))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for values in rows:
            self.writerow(values)
