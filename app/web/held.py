"""Changes held for review (app.services.held): coordinators apply or reject them."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from app.errors import Problem
from app.i18n import t
from app.routeaccess import COORDINATORS, declare
from app.runtime import runtime
from app.services import submissions
from app.services.children import held

from . import bp, client_ip, db_user, register_nav, requires, retried

register_nav(25, "web.held_index", "Held for review", COORDINATORS)
STATUSES = ("pending", "applied", "rejected")


@bp.get("/held")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
def held_index() -> Any:
    user = db_user()
    status = request.args.get("status", "pending")
    if status not in STATUSES:
        status = "pending"
    with runtime().db.session() as s:
        rows = held.list_held(s, user.project_id, user, status=status)
    return render_template("held/index.html", rows=rows, status=status, statuses=STATUSES)


@bp.post("/held/<int:held_id>")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
@retried
def held_decide(held_id: int) -> Any:
    user = db_user()
    action = request.form.get("action", "")
    try:
        with runtime().db.write() as s:
            submissions.decide_held(s, user.project_id, user, held_id, action, note=request.form.get("note", ""),
                        ip=client_ip())
    except Problem as problem:
        if problem.status == 404:
            raise
        flash(problem.translated(t))
        return redirect(url_for("web.held_index"))
    flash(t("The change was applied.") if action == "apply" else t("The change was rejected."))
    return redirect(url_for("web.held_index"))
