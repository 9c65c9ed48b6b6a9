"""Changes held for review (app.services.held) in the JSON API: list, apply, reject."""
from __future__ import annotations

from flask import Response, jsonify, request

from app.errors import Problem
from app.routeaccess import COORDINATORS, declare
from app.runtime import runtime
from app.services import submissions
from app.services.children import held

from . import bp
from .auth import api_user


@bp.get("/v1/projects/<int:project_id>/held-changes")
@declare(COORDINATORS, scoped=True)
def held_list(project_id: int) -> Response:
    user = api_user()
    status = request.args.get("status", "pending")
    if status not in ("pending", "applied", "rejected", ""):
        raise Problem(400, "400.82", "status is one of pending, applied, rejected (or empty for all).")
    with runtime().db.session() as s:
        if project_id != user.project_id:
            raise Problem(404, "404.1", "Could not find the resource you were looking for.")
        return jsonify([r.json() for r in held.list_held(s, project_id, user, status=status)])


@bp.post("/v1/projects/<int:project_id>/held-changes/<int:held_id>")
@declare(COORDINATORS, scoped=True)
def held_decide(project_id: int, held_id: int) -> Response:
    user = api_user()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or body.get("action") not in ("apply", "reject"):
        raise Problem(400, "400.80", 'Send JSON {"action": "apply"} or {"action": "reject"} (and an optional "note").')
    note = body.get("note") or ""
    if not isinstance(note, str):
        raise Problem(400, "400.81", "note must be a string.")
    with runtime().db.write() as s:
        if project_id != user.project_id:
            raise Problem(404, "404.80", "There is no such held change in your regions.")
        change = submissions.decide_held(s, project_id, user, held_id, body["action"], note=note,
                                         ip=request.remote_addr or "", via="api")
        return jsonify({"id": change.id, "status": change.status})
