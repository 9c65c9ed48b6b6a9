"""`build_row` compiled for one table: the same cells, without the per-cell loop.

`tabular.build_row(data, specs)` walks the specs for every row (unpack the spec, test the kind,
append). For a table's fixed specs, `compile_row` generates one Python function with a straight
line of code per column — the kind tests done once, here — and returns the row as one list
display. The generated code refers to the keys, label dicts and functions only through names
bound in its namespace (K0, F0, …), never through their text. Output is identical to build_row
(tests/app/exports/test_exports.py compares both on every kind of cell).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.services.spreadsheets import CHECK_FIRST, FORMULA_START, neutralise

# The CSV/XLSX injection guard (app/services/spreadsheets.py), used by every cell of every export
# (tabular.build_row, the compiled rows below, headers, KEYs).


def _generic(spec: Any) -> Callable[[Any], list[Any]]:
    """One spec's cells as a list (kinds 0-2 with a width other than 1: not produced by the plan)."""
    return lambda v: build_row({spec[0]: v}, [spec])


_EMPTY = {n: [""] * n for n in range(1, 64)}


def build_row(data: dict[str, Any], specs: list[Any]) -> list[Any]:
    """The cells of one row (hot loop: no per-cell function call for plain values and choices).

    kind 0: the value as is; 1: a dict lookup (choice labels); 2: a function giving one cell;
    3: a function giving `width` cells. Strings a spreadsheet would run as formulas
    (= + - @ or their full-width forms first, also after spaces; or a leading tab, CR, LF) get a
    leading apostrophe (neutralise).
    """
    out: list[Any] = []
    ap, ex, get, danger = out.append, out.extend, data.get, CHECK_FIRST
    for key, kind, fn, width in specs:
        v = get(key)
        if v is None or v == "":
            if width == 1:
                ap("")
            else:
                ex(_EMPTY.get(width) or [""] * width)
            continue
        if kind == 1:
            v = fn.get(v, v)
        elif kind == 2:
            v = fn(v)
        elif kind == 3:
            ex(fn(v))
            continue
        if v.__class__ is str and v and v[0] in danger:
            v = neutralise(v)
        ap(v)
    return out


def compile_row(specs: list[Any]) -> Callable[[dict[str, Any]], list[Any]]:
    ns: dict[str, Any] = {"D": CHECK_FIRST, "N": neutralise}
    lines = ["def row(data):", "    g = data.get"]
    cells = []
    for i, (key, kind, fn, width) in enumerate(specs):
        ns[f"K{i}"], ns[f"F{i}"], ns[f"E{i}"] = key, fn, [""] * width
        lines.append(f"    v = g(K{i})")
        if kind == 3:
            lines.append(f"    c{i} = E{i} if v is None or v == '' else F{i}(v)")
            cells.append(f"*c{i}")
            continue
        if width != 1:
            ns[f"G{i}"] = _generic((key, kind, fn, width))
            lines.append(f"    c{i} = E{i} if v is None or v == '' else G{i}(v)")
            cells.append(f"*c{i}")
            continue
        lines.append("    if v is None or v == '':")
        lines.append(f"        c{i} = ''")
        lines.append("    else:")
        if kind == 1:
            lines.append(f"        v = F{i}.get(v, v)")
        elif kind == 2:
            lines.append(f"        v = F{i}(v)")
        lines.append(f"        c{i} = N(v) if v.__class__ is str and v and v[0] in D else v")
        cells.append(f"c{i}")
    lines.append(f"    return [{', '.join(cells)}]")
    exec(compile("\n".join(lines), "<export row>", "exec"), ns)  # noqa: S102 - generated from trusted specs
    row: Callable[[dict[str, Any]], list[Any]] = ns["row"]
    return row


__all__ = ["CHECK_FIRST", "FORMULA_START", "compile_row", "neutralise"]
