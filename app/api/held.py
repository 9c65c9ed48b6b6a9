"""Changes held for review (app.services.children.held) in the JSON API: list, apply, reject."""
from __future__ import annotations

from typing import Any

from flask import request

from app import problems
from app.routeaccess import COORDINATORS
from app.services import submissions
from app.services.children import held

from . import Call, endpoint
from .bodies import json_body


@endpoint("/v1/projects/<int:project_id>/held-changes", roles=COORDINATORS, scoped=True)
def held_list(call: Call, project_id: int) -> Any:
    status = request.args.get("status", "pending")
    if status not in ("pending", "applied", "rejected", ""):
        raise problems.HELD_STATUS_UNKNOWN()
    if project_id != call.user.project_id:
        raise problems.NOT_FOUND()
    return [r.json() for r in held.list_held(call.session, project_id, call.user, status=status)]


@endpoint("/v1/projects/<int:project_id>/held-changes/<int:held_id>", roles=COORDINATORS, methods=["POST"],
          scoped=True, tx="write")
def held_decide(call: Call, project_id: int, held_id: int) -> Any:
    body = json_body(example='{"action": "apply"}')
    if body.get("action") not in ("apply", "reject"):
        raise problems.HELD_ACTION_MISSING()
    note = body.get("note") or ""
    if not isinstance(note, str):
        raise problems.HELD_NOTE_NOT_STRING()
    if project_id != call.user.project_id:
        raise problems.NO_SUCH_HELD_CHANGE()
    change = submissions.decide_held(call.session, project_id, call.user, held_id, body["action"], note=note,
                                     ip=call.ip, via="api")
    return {"id": change.id, "status": change.status}
