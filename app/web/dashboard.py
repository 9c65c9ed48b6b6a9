"""The managers' overview: pictures for the manager's regions (SVG drawn on the server: risk levels
over time, coverage and overdue follow-ups by area, the referral funnel, records per month),
children by risk level and status per region, overdue follow-ups, submissions per week."""
from __future__ import annotations

from typing import Any

from flask import render_template

from app.i18n import t
from app.runtime import runtime
from app.services import access
from app.services.reports import county as rep
from app.services.reports import dashboard as dash
from app.services.reports import rollup

from . import bp, charts, db_user, register_nav, requires
from .children import today_local

ROLES = ("admin", "coordinator", "manager")

register_nav(5, "web.dashboard", "Dashboard", ROLES)


@bp.get("/dashboard")
@requires(*ROLES)
def dashboard() -> Any:
    user = db_user()
    today = today_local()
    rt = runtime()
    with rt.db.session() as s:
        # Figures stored by `carefile dashboard refresh` for a large scope while fresh, else live.
        stored = rollup.current(s, user.project_id, user, today, int(rt.config["DASHBOARD_MAX_AGE"] or 0),
                                live_up_to=int(rt.config["DASHBOARD_LIVE_UP_TO"] or 0))
        if stored is not None:
            access.require_reader(user)
            risk = stored.children_by(user, "risk_level")
            status = stored.children_by(user, "status")
            overdue = stored.overdue_count()
            conflicts = stored.conflict_count()
            pics = stored.pictures(user, today)
            weeks = stored.weeks(today)
        else:
            risk = dash.children_by(s, user.project_id, user, "risk_level")
            status = dash.children_by(s, user.project_id, user, "status")
            overdue = dash.overdue_count(s, user.project_id, user, today)
            conflicts = dash.conflict_count(s, user.project_id, user)
            pics = rep.pictures(s, user.project_id, user, today)
            weeks = dash.submissions_per_week(s, user.project_id, user, today)
        names = dash.region_names(s, user.project_id)
        problems = dash.entity_problems(s, user.project_id, user)
    peak = max((n for _, n in weeks), default=0)
    return render_template("dashboard/index.html", risk=risk, status=status, overdue=overdue, weeks=weeks,
                           peak=peak, names=names, week_total=sum(n for _, n in weeks), problems=problems,
                           conflicts=conflicts, charts=draw(pics, names), quarter=pics.quarter,
                           as_of=stored.computed_at if stored is not None else None)


RISK_COLORS = {"unassessed": "#9e9e9e", "green": "#2e7d32", "yellow": "#f2c200", "orange": "#ef6c00",
               "red": "#c62828"}
FORM_COLORS = {rep.IDENTIFICATION: "#1565c0", rep.ASSESSMENT: "#6a1b9a", rep.VISIT: "#00897b",
               rep.REFERRAL: "#ef6c00"}


def _area(code: str, names: Any) -> str:
    labels = names.get(code) if code else None
    return (next(iter(labels.values())) if labels else code) or t("No region")


def draw(p: rep.Pictures, names: Any) -> dict[str, Any]:
    """The dashboard's SVG charts in the UI language."""
    risk_names = {"unassessed": t("Not assessed"), "green": t("Green"), "yellow": t("Yellow"),
                  "orange": t("Orange"), "red": t("Red")}
    form_names = {rep.IDENTIFICATION: t("Identification"), rep.ASSESSMENT: t("Assessment"),
                  rep.VISIT: t("Visit"), rep.REFERRAL: t("Referral and follow-up")}
    months = [m.start.strftime("%y-%m") for m in p.months]
    return {
        "risk": charts.stacked_columns(
            months, [(risk_names[k], RISK_COLORS[k], [m[k] for m in p.risk_by_month]) for k in RISK_COLORS],
            t("Children by risk level at the end of each month"), "chart-risk"),
        "coverage": charts.stacked_bars(
            [(_area(a, names), [v, not_v]) for a, _, v, not_v in p.coverage],
            [(t("Visited this quarter"), "#2e7d32"), (t("Not visited this quarter"), "#c62828")],
            t("Identification and visit coverage this quarter"), "chart-coverage",
            t("No children on file in your regions yet.")),
        "overdue": charts.stacked_bars(
            [(_area(a, names), [n]) for a, n in p.overdue],
            [(t("Overdue follow-ups"), "#c62828")], t("Overdue follow-ups"), "chart-overdue",
            t("No children on file in your regions yet.")),
        "funnel": charts.funnel(
            [(t("Referred"), p.funnel["referred"]), (t("Accepted (in service)"), p.funnel["accepted"]),
             (t("Service completed"), p.funnel["completed"])], "#1565c0", t("Referral funnel"), "chart-funnel"),
        "records": charts.stacked_columns(
            months, [(form_names[k], FORM_COLORS[k], [m[k] for m in p.records_by_month]) for k in FORM_COLORS],
            t("Visits and records per month"), "chart-records"),
    }
