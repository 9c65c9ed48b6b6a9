"""Places: the region search behind every region field (a datalist filled as the user types),
names of division codes for the templates, and the check of typed region codes.

The division table is public reference data (统计用区划代码): any signed-in web user may search
it; it says nothing about children.
"""
from __future__ import annotations

import re
from typing import Any

from flask import jsonify, request

from app.i18n import t
from app.routeaccess import WEB_USERS, declare
from app.services import regions

from . import bp, requires

SEARCH_LIMIT = 20


def split_codes(text: str | None) -> list[str]:
    return [c for c in re.split(r"[\s,，;；、]+", text or "") if c]


def region_field_error(codes: list[str]) -> str | None:
    """The first wrong code's message in the UI language, or None when every code is a real place."""
    for code in codes:
        problem = regions.code_error(code)
        if problem:
            return t(problem, value=code)
    return None


@bp.app_template_global("place_name")
def place_name(code: str | None, full: bool = True) -> str:
    """'拉萨市 城关区 八廓街道' for a known code, '' otherwise."""
    if not code:
        return ""
    return (regions.full_name(code) if full else regions.name(code)) or ""


@bp.app_template_global("place_label")
def place_label(code: str | None) -> str:
    """A place as pages show it: its name with the code beside it; the bare code when unknown."""
    if not code:
        return t("No region")
    found = regions.name(code)
    return f"{found} ({code})" if found else code


@bp.get("/regions/search")
@declare(WEB_USERS)
@requires()
def regions_search() -> Any:
    """JSON: places whose name contains q (or whose code starts with it), largest first; level=village: only
    villages (the village a child moves to)."""
    q = request.args.get("q", "").strip()[:40]
    length = 12 if request.args.get("level") == "village" else None
    found = regions.search(q, limit=SEARCH_LIMIT, code_length=length) if q else []
    return jsonify([{"code": r.code, "name": r.name, "full": regions.full_name(r.code) or r.name,
                     "level": r.level} for r in found])
