"""XLSX: one sheet per table (main table, then one per repeat), written with openpyxl's
write-only mode, which streams each sheet's rows to a temporary file instead of keeping cells.

Sheet names are at most 31 characters and unique; a table longer than Excel's 1,048,576 rows
continues on a sheet named "<name> (2)". Strings that Excel would run as formulas are neutralised
and characters XML cannot carry are dropped. The workbook is saved to a seekable file (a zip).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy.orm import Session

from app.services.exports.rowcode import CHECK_FIRST, neutralise
from app.services.exports.tabular import Plan

MAX_ROWS = 1_048_576
_BAD_SHEET = str.maketrans({c: "_" for c in "[]:*?/\\"})


class _Sheet:
    def __init__(self, wb: Workbook, names: set[str], base: str, headers: list[str]) -> None:
        self.wb, self.names, self.base, self.headers = wb, names, base, headers
        self.part = 0
        self.ws: Any = None
        self.rows = 0
        self._next()

    def _next(self) -> None:
        self.part += 1
        stem = self.base.translate(_BAD_SHEET)
        suffix = "" if self.part == 1 else f" ({self.part})"
        name = stem[:31 - len(suffix)] + suffix
        n = 1
        while name.lower() in self.names:
            n += 1
            tag = f"~{n}{suffix}"
            name = stem[:31 - len(tag)] + tag
        self.names.add(name.lower())
        self.ws = self.wb.create_sheet(title=name)
        self.ws.append(self.headers)
        self.rows = 1

    def append(self, row: list[Any]) -> None:
        if self.rows >= MAX_ROWS:
            self._next()
        self.ws.append(_clean(row))
        self.rows += 1


def _clean(row: list[Any]) -> list[Any]:
    for i, c in enumerate(row):
        if c.__class__ is str and c:
            if ILLEGAL_CHARACTERS_RE.search(c):
                c = row[i] = ILLEGAL_CHARACTERS_RE.sub("", c)
            if c and c[0] in CHECK_FIRST:  # the rows are guarded already; dropping characters can expose one
                row[i] = neutralise(c)
    return row


def write_xlsx(plan: Plan, session: Session, out: Any, progress: Callable[[int], None] | None = None) -> None:
    """Write the workbook to out (a seekable binary file)."""
    wb = Workbook(write_only=True)
    names: set[str] = set()
    sheets = [_Sheet(wb, names, t.name if i else plan.form.xml_form_id, t.headers)
              for i, t in enumerate(plan.tables)]
    main_row, repeat_row = plan.main_row, plan.repeat_row
    main = sheets[0]
    for rec in plan.records(session, progress=progress):
        main.append(main_row(rec))
        for rep in rec.repeats:
            sheets[rep.table].append(repeat_row(rep))
    wb.save(out)
