"""The child file API: list, overdue follow-ups, one child's whole file, record attachments."""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import request

from app.routeaccess import READERS
from app.services import audit
from app.services.children import childfile

from . import Call, endpoint
from .odata import int_arg


@endpoint("/v1/projects/<int:project_id>/children", roles=READERS, scoped=True)
def children_list(call: Call, project_id: int) -> Any:
    overdue = request.args.get("overdue") in ("1", "true", "yes")
    rows, total = childfile.list_children(
        call.session, project_id, call.user, q=request.args.get("q", ""), region=request.args.get("region", ""),
        risk_level=request.args.get("risk_level", ""), status=request.args.get("status", ""),
        overdue_on=date.today() if overdue else None,
        limit=min(max(int_arg("limit", 50) or 1, 1), 500), offset=int_arg("offset", 0) or 0)
    return {"total": total, "children": [r.json() for r in rows]}


@endpoint("/v1/projects/<int:project_id>/children/overdue", roles=READERS, scoped=True)
def children_overdue(call: Call, project_id: int) -> Any:
    grouped = childfile.overdue_children(call.session, project_id, call.user, date.today())
    return {region: [r.json() for r in rows] for region, rows in grouped.items()}


@endpoint("/v1/projects/<int:project_id>/children/<uid>", roles=READERS, scoped=True, tx="write")
def child_file(call: Call, project_id: int, uid: str) -> Any:
    found = childfile.child_file(call.session, project_id, call.user, uid)
    audit.record(call.session, call.user, "child.view", target=f"child:{found.child.uuid}",
                 unmasked=found.unmasked, ip=call.ip, via="api")
    return found.json()
