"""The managers' overview: children by risk level and status per region, overdue follow-ups,
submissions per week (a CSS bar chart)."""
from __future__ import annotations

from typing import Any

from flask import render_template

from app.runtime import runtime
from app.services import dashboard as dash

from . import bp, db_user, register_nav, requires
from .children import today_local

ROLES = ("admin", "coordinator", "manager")

register_nav(5, "web.dashboard", "Dashboard", ROLES)


@bp.get("/dashboard")
@requires(*ROLES)
def dashboard() -> Any:
    user = db_user()
    today = today_local()
    with runtime().db.session() as s:
        risk = dash.children_by(s, user.project_id, user, "risk_level")
        status = dash.children_by(s, user.project_id, user, "status")
        overdue = dash.overdue_count(s, user.project_id, user, today)
        weeks = dash.submissions_per_week(s, user.project_id, user, today)
        names = dash.region_names(s, user.project_id)
        problems = dash.entity_problems(s, user.project_id, user)
        conflicts = dash.conflict_count(s, user.project_id, user)
    peak = max((n for _, n in weeks), default=0)
    return render_template("dashboard/index.html", risk=risk, status=status, overdue=overdue, weeks=weeks,
                           peak=peak, names=names, week_total=sum(n for _, n in weeks), problems=problems,
                           conflicts=conflicts)
