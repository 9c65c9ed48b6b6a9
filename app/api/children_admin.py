"""Case work on children over the JSON API: duplicates and merges, moves, closure, turning 18."""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, jsonify, request

from app.errors import Problem
from app.routeaccess import COORDINATORS, READERS, declare
from app.runtime import runtime
from app.services import access
from app.services.children import casework, childfile, duplicates

from . import bp
from .auth import api_user


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise Problem(400, "400.30", "Send a JSON object, e.g. {\"reason\": \"turned18\"}.")
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Problem(400, "400.30", f"'{key}' must be a string.")
    return value


def _child(session: Any, project_id: int, user: Any, uid: str) -> dict[str, Any]:
    return childfile.ChildSummary.of(childfile.get_child(session, project_id, user, uid)).__dict__


@bp.get("/v1/projects/<int:project_id>/children/duplicates")
@declare(COORDINATORS, scoped=True)
def children_duplicates(project_id: int) -> Response:
    user = api_user()
    access.require(user, "case.decide")
    status = request.args.get("status", "open")
    if status not in ("open", "merged", "distinct", ""):
        raise Problem(400, "400.30", "status must be open, merged or distinct.")
    with runtime().db.session() as session:
        pairs = duplicates.list_pairs(session, project_id, user, status=status)
    return jsonify(pairs)


@bp.get("/v1/projects/<int:project_id>/children/turning18")
@declare(READERS, scoped=True)
def children_turning18(project_id: int) -> Response:
    user = api_user()
    try:
        days = min(max(int(request.args.get("days", "90")), 1), 366)
    except ValueError:
        raise Problem(400, "400.30", "days must be a whole number of days, e.g. 90.") from None
    with runtime().db.session() as session:
        rows = casework.turning_18(session, project_id, user, date.today(), days)
    return jsonify(rows)


@bp.post("/v1/projects/<int:project_id>/children/<uid>/merge")
@declare(COORDINATORS, scoped=True)
def child_merge(project_id: int, uid: str) -> Response:
    user = api_user()
    body = _body()
    with runtime().db.write() as session:
        survivor = duplicates.merge(session, project_id, user, uid, _text(body, "into").strip().lower(),
                                    note=_text(body, "note"), ip=request.remote_addr or "")
        out = _child(session, project_id, user, survivor.uuid)
    return jsonify(out)


@bp.post("/v1/projects/<int:project_id>/children/<uid>/distinct")
@declare(COORDINATORS, scoped=True)
def child_distinct(project_id: int, uid: str) -> Response:
    user = api_user()
    body = _body()
    other = _text(body, "other").strip().lower()
    if not other:
        raise Problem(400, "400.30", 'Name the other child: {"other": "<uuid>"}.')
    with runtime().db.write() as session:
        duplicates.mark_distinct(session, project_id, user, uid, other, ip=request.remote_addr or "")
    return jsonify({"success": True})


@bp.post("/v1/projects/<int:project_id>/children/<uid>/transfer")
@declare(READERS, scoped=True, note="coordinators anywhere; managers when both villages lie in their regions")
def child_transfer(project_id: int, uid: str) -> Response:
    user = api_user()
    body = _body()
    with runtime().db.write() as session:
        child = casework.transfer(session, project_id, user, uid, _text(body, "village"), note=_text(body, "note"),
                                  ip=request.remote_addr or "")
        out = childfile.ChildSummary.of(child).__dict__
    return jsonify(out)


@bp.post("/v1/projects/<int:project_id>/children/<uid>/close")
@declare(READERS, scoped=True)
def child_close(project_id: int, uid: str) -> Response:
    user = api_user()
    body = _body()
    with runtime().db.write() as session:
        child = casework.close(session, project_id, user, uid, _text(body, "reason"), note=_text(body, "note"),
                               ip=request.remote_addr or "")
        out = childfile.ChildSummary.of(child).__dict__ | {"close_reason": child.close_reason}
    return jsonify(out)


@bp.post("/v1/projects/<int:project_id>/children/<uid>/reopen")
@declare(READERS, scoped=True)
def child_reopen(project_id: int, uid: str) -> Response:
    user = api_user()
    body = _body()
    with runtime().db.write() as session:
        child = casework.reopen(session, project_id, user, uid, note=_text(body, "note"), ip=request.remote_addr or "")
        out = childfile.ChildSummary.of(child).__dict__
    return jsonify(out)
