"""`build_row` compiled for one table: the same cells, without the per-cell loop.

`tabular.build_row(data, specs)` walks the specs for every row (unpack the spec, test the kind,
append). For a table's fixed specs, `compile_row` generates one Python function with a straight
line of code per column — the kind tests done once, here — and returns the row as one list
display. The generated code refers to the keys, label dicts and functions only through names
bound in its namespace (K0, F0, …), never through their text. Output is identical to build_row
(tests/app/test_exports.py compares both on every kind of cell).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

_DANGER = frozenset("=+-@\t\r")


def _generic(spec: Any) -> Callable[[Any], list[Any]]:
    """One spec's cells as a list (kinds 0-2 with a width other than 1: not produced by the plan)."""
    from .tabular import build_row

    return lambda v: build_row({spec[0]: v}, [spec])


def compile_row(specs: list[Any]) -> Callable[[dict[str, Any]], list[Any]]:
    ns: dict[str, Any] = {"D": _DANGER}
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
        lines.append(f"        c{i} = \"'\" + v if v.__class__ is str and v and v[0] in D else v")
        cells.append(f"c{i}")
    lines.append(f"    return [{', '.join(cells)}]")
    exec(compile("\n".join(lines), "<export row>", "exec"), ns)  # noqa: S102 - generated from trusted specs
    row: Callable[[dict[str, Any]], list[Any]] = ns["row"]
    return row


__all__ = ["compile_row"]
