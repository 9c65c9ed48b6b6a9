"""JSON API: Central-compatible where ODK Central has an equivalent, plus the child file."""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from app import faults
from app.errors import Problem
from app.services.identity import signin

bp = Blueprint("api", __name__)


@bp.errorhandler(Problem)
def _problem(problem: Problem) -> tuple[Response, int]:
    if isinstance(problem, signin.Throttled):  # a throttled guess (a password, a managed key's passphrase)
        g.retry_after = problem.retry_after
    try:
        code: float | str = float(problem.code)
    except ValueError:
        code = problem.code
    body: dict[str, object] = {"code": code, "message": problem.message}
    if problem.details:
        body["details"] = problem.details
    return jsonify(body), problem.status


faults.register(bp, _problem)  # database / blob store / disk unreachable: JSON 503 with Retry-After

from .endpoint import Call, make_endpoint  # noqa: E402

endpoint = make_endpoint(bp)  # every route of this blueprint: roles, sign-in, transaction, rendering
__all__ = ["Call", "bp", "endpoint"]


from . import (  # noqa: E402,F401
    app_users,
    central,
    children,
    children_admin,
    datasets,
    entities_write,
    exports,
    forms_drafts,
    forms_write,
    geojson,
    held,
    misc,
    odata,
    sessions,
    submissions,
    submissions_write,
)
