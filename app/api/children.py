"""The child file API: list, overdue follow-ups, one child's whole file, record attachments."""
from __future__ import annotations

from datetime import date

from flask import Response, jsonify, request

from app.routeaccess import READERS, declare
from app.runtime import runtime
from app.services import audit
from app.services.children import childfile

from . import bp
from .auth import api_user
from .odata import int_arg


@bp.get("/v1/projects/<int:project_id>/children")
@declare(READERS, scoped=True)
def children_list(project_id: int) -> Response:
    user = api_user()
    overdue = request.args.get("overdue") in ("1", "true", "yes")
    with runtime().db.session() as session:
        rows, total = childfile.list_children(
            session, project_id, user, q=request.args.get("q", ""), region=request.args.get("region", ""),
            risk_level=request.args.get("risk_level", ""), status=request.args.get("status", ""),
            overdue_on=date.today() if overdue else None,
            limit=min(max(int_arg("limit", 50) or 1, 1), 500), offset=int_arg("offset", 0) or 0)
    return jsonify({"total": total, "children": [r.__dict__ for r in rows]})


@bp.get("/v1/projects/<int:project_id>/children/overdue")
@declare(READERS, scoped=True)
def children_overdue(project_id: int) -> Response:
    user = api_user()
    with runtime().db.session() as session:
        grouped = childfile.overdue_children(session, project_id, user, date.today())
    return jsonify({region: [r.__dict__ for r in rows] for region, rows in grouped.items()})


@bp.get("/v1/projects/<int:project_id>/children/<uid>")
@declare(READERS, scoped=True)
def child_file(project_id: int, uid: str) -> Response:
    user = api_user()
    with runtime().db.write() as session:
        body = childfile.child_file(session, project_id, user, uid)
        audit.record(session, user, "child.view", target=f"child:{body['child']['uuid']}", unmasked=body["unmasked"],
                     ip=request.remote_addr or "", via="api")
    return jsonify(body)
