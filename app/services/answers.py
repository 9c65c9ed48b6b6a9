"""Reading stored answers (a leaf every area may use).

A submission's values are stored with keys relative to the form's root, so a question inside a
group is `grp_child/child_name`. Code that looks for a question by name (the duplicate check, case
work, reports) finds it wherever the form put it.
"""
from __future__ import annotations

from typing import Any


def answer(values: dict[str, Any], name: str) -> Any:
    """The value of the question `name`, whatever group it sits in (None when there is none)."""
    if name in values:
        return values[name]
    for key, value in values.items():
        if key.rsplit("/", 1)[-1] == name:
            return value
    return None


def answer_key(values: dict[str, Any], name: str) -> str | None:
    """The stored key of the question `name` (e.g. `grp_child/id_number`), or None."""
    if name in values:
        return name
    return next((k for k in values if k.rsplit("/", 1)[-1] == name), None)
