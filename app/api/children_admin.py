"""Case work on children over the JSON API: duplicates and merges, moves, closure, turning 18."""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import request

from app import problems
from app.routeaccess import COORDINATORS, READERS
from app.services.children import casework, childfile, duplicates

from . import Call, endpoint
from .bodies import json_body

CHILD = "/v1/projects/<int:project_id>/children/<uid>"


def _body() -> dict[str, Any]:
    return json_body(empty_ok=True, example='{"reason": "turned18"}')


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise problems.CASEWORK_FIELD_NOT_STRING(key=key)
    return value


@endpoint("/v1/projects/<int:project_id>/children/duplicates", roles=COORDINATORS, scoped=True)
def children_duplicates(call: Call, project_id: int) -> Any:
    status = request.args.get("status", "open")
    if status not in ("open", "merged", "distinct", ""):
        raise problems.DUPLICATE_STATUS_INVALID()
    return [p.json() for p in childfile.duplicate_pairs(call.session, project_id, call.user, status=status)]


@endpoint("/v1/projects/<int:project_id>/children/turning18", roles=READERS, scoped=True)
def children_turning18(call: Call, project_id: int) -> Any:
    try:
        days = min(max(int(request.args.get("days", "90")), 1), 366)
    except ValueError:
        raise problems.CASEWORK_DAYS_INVALID() from None
    return [r.json() for r in childfile.turning_18(call.session, project_id, call.user, date.today(), days)]


@endpoint(f"{CHILD}/merge", roles=COORDINATORS, methods=["POST"], scoped=True, tx="write")
def child_merge(call: Call, project_id: int, uid: str) -> Any:
    body = _body()
    survivor = duplicates.merge(call.session, project_id, call.user, uid, _text(body, "into").strip().lower(),
                                note=_text(body, "note"), ip=call.ip)
    return childfile.summary(call.session, project_id, call.user, survivor).json()


@endpoint(f"{CHILD}/distinct", roles=COORDINATORS, methods=["POST"], scoped=True, tx="write")
def child_distinct(call: Call, project_id: int, uid: str) -> Any:
    other = _text(_body(), "other").strip().lower()
    if not other:
        raise problems.CASEWORK_OTHER_MISSING()
    duplicates.mark_distinct(call.session, project_id, call.user, uid, other, ip=call.ip)


@endpoint(f"{CHILD}/transfer", roles=READERS, methods=["POST"], scoped=True, tx="write",
          note="coordinators anywhere; managers when both villages lie in their regions")
def child_transfer(call: Call, project_id: int, uid: str) -> Any:
    body = _body()
    child = casework.transfer(call.session, project_id, call.user, uid, _text(body, "village"),
                              note=_text(body, "note"), ip=call.ip)
    return childfile.summary(call.session, project_id, call.user, child).json()


@endpoint(f"{CHILD}/close", roles=READERS, methods=["POST"], scoped=True, tx="write")
def child_close(call: Call, project_id: int, uid: str) -> Any:
    body = _body()
    child = casework.close(call.session, project_id, call.user, uid, _text(body, "reason"),
                           note=_text(body, "note"), ip=call.ip)
    return childfile.summary(call.session, project_id, call.user, child).json() | {"close_reason": child.close_reason}


@endpoint(f"{CHILD}/reopen", roles=READERS, methods=["POST"], scoped=True, tx="write")
def child_reopen(call: Call, project_id: int, uid: str) -> Any:
    child = casework.reopen(call.session, project_id, call.user, uid, note=_text(_body(), "note"), ip=call.ip)
    return childfile.summary(call.session, project_id, call.user, child).json()
