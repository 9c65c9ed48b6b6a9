"""README's API table lists every /v1 route (and /version.txt): a new route without a row fails here."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[3] / "README.md"
SECTION = "## The Central-compatible API"


def documented() -> set[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section '{SECTION}'"
    body = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows: set[tuple[str, str]] = set()
    for line in body.splitlines():
        m = re.match(r"\|\s*([A-Z, ]+?)\s*\|\s*`([^`]+)`\s*\|", line)
        if m:
            for method in m.group(1).split(","):
                rows.add((method.strip(), m.group(2)))
    return rows


def routes(app: Any) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/v1/") or rule.rule == "/version.txt"):
            continue
        path = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((method, path))
    return out


def test_every_api_route_has_a_row_in_the_readme(app: Any) -> None:
    missing = sorted(routes(app) - documented())
    assert not missing, "Add these routes to README's API table:\n" + "\n".join(f"{m} {p}" for m, p in missing)


def test_the_table_names_no_route_that_does_not_exist(app: Any) -> None:
    stale = sorted(documented() - routes(app))
    assert not stale, "README's API table lists routes the server does not have:\n" + "\n".join(
        f"{m} {p}" for m, p in stale)
