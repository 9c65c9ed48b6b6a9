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


class SafeCsvWriter:
    """csv.writer whose rows are made safe first."""

    def __init__(self, out: Any, **kwargs: Any) -> None:
        self._w = csv.writer(out, **kwargs)

    def writerow(self, values: Iterable[Any]) -> Any:
        return self._w.writerow(row(values))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for values in rows:
            self.writerow(values)
