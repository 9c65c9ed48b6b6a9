"""Changes held for review (app.services.children.held) in the JSON API: list, apply, reject."""
from __future__ import annotations

from typing import Any

from flask import request

from app.errors import Problem
from app.routeaccess import COORDINATORS
from app.services import submissions
from app.services.children import held

from . import Call, endpoint
from .bodies import json_body


@endpoint("/v1/projects/<int:project_id>/held-changes", roles=COORDINATORS, scoped=True)
def held_list(call: Call, project_id: int) -> Any:
    status = request.args.get("status", "pending")
    if status not in ("pending", "applied", "rejected", ""):
        raise Problem(400, "400.82", "status is one of pending, applied, rejected (or empty for all).")
    if project_id != call.user.project_id:
        raise Problem(404, "404.1", "Could not find the resource you were looking for.")
    return [r.json() for r in held.list_held(call.session, project_id, call.user, status=status)]


@endpoint("/v1/projects/<int:project_id>/held-changes/<int:held_id>", roles=COORDINATORS, methods=["POST"],
          scoped=True, tx="write")
def held_decide(call: Call, project_id: int, held_id: int) -> Any:
    body = json_body(example='{"action": "apply"}')
    if body.get("action") not in ("apply", "reject"):
        raise Problem(400, "400.80", 'Send JSON {"action": "apply"} or {"action": "reject"} (and an optional "note").')
    note = body.get("note") or ""
    if not isinstance(note, str):
        raise Problem(400, "400.81", "note must be a string.")
    if project_id != call.user.project_id:
        raise Problem(404, "404.80", "There is no such held change in your regions.")
    change = submissions.decide_held(call.session, project_id, call.user, held_id, body["action"], note=note,
                                     ip=call.ip, via="api")
    return {"id": change.id, "status": change.status}
