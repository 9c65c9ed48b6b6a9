"""The county report (monthly or quarterly): an A4 print page and an XLSX download.

The counts come from app.services.reports.county (region-scoped there); this module only picks the
county and the period and renders them in the UI language.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import make_response, render_template, request

from app.errors import Problem
from app.i18n import t
from app.routeaccess import READERS, declare
from app.runtime import runtime
from app.services import audit
from app.services.answers import LOCAL_TZ
from app.services.reports import county as rep

from . import bp, client_ip, db_user, register_nav, requires
from .children import today_local

register_nav(7, "web.reports", "Reports", READERS)


def column_labels() -> dict[str, str]:
    return {
        "on_file": t("Open files"), "new_files": t("New files"), "identified": t("Identified"),
        "assessed": t("Assessed"), "visited": t("Visited"), "referred": t("Referred"),
        "followed_up": t("Followed up"), "closed": t("Closed"), "overdue": t("Follow-up overdue"),
        "risk_unassessed": t("Not assessed"), "risk_green": t("Green"), "risk_yellow": t("Yellow"),
        "risk_orange": t("Orange"), "risk_red": t("Red"),
    }


def notes() -> list[str]:
    return [
        t("Open files, risk levels and overdue follow-ups: as they stood at the end of the period. The other "
          "columns count children with such a record dated in the period."),
        t("Screening, not diagnosis. Confidential."),
    ]


def _choices(today: Any) -> list[tuple[str, str]]:
    """Recent periods to pick from: this and the last five months, this and the last three quarters."""
    months = [p.key for p in rep.last_months(today, 6)][::-1]
    q = rep.quarter_of(today)
    quarters = [q.key]
    for _ in range(3):
        q = rep.quarter_of(q.start - timedelta(days=1))
        quarters.append(q.key)
    return [(k, k) for k in quarters + months]


def _params(user: Any) -> tuple[str, rep.Period, list[Any]]:
    today = today_local()
    counties = rep.report_counties(user)
    county = request.args.get("county", "").strip() or (counties[0].code if counties else "")
    period = rep.parse_period(request.args.get("period", "") or rep.quarter_of(today).key)
    return county, period, counties


@bp.get("/reports")
@declare(READERS, scoped=True)
@requires(*READERS)
def reports() -> Any:
    user = db_user()
    today = today_local()
    error, report, as_of = None, None, None
    county, counties = "", rep.report_counties(user)
    period = rep.quarter_of(today)
    try:
        county, period, counties = _params(user)
        if county:
            with runtime().db.bulk_read() as s:  # the read replica when there is one
                report = rep.county_report(s, user.project_id, user, county, period, today)
                as_of = s.info.get("as_of")
    except Problem as problem:
        error = problem.translated(t)
        if problem.status == 404:
            return render_template("reports/index.html", error=error, report=None, counties=counties,
                                   county=county, period=period, choices=_choices(today),
                                   labels=column_labels(), columns=rep.COLUMNS, notes=notes()), 404
    return render_template("reports/index.html", error=error, report=report, counties=counties, county=county,
                           period=period, choices=_choices(today), labels=column_labels(),
                           columns=rep.COLUMNS, notes=notes(),
                           as_of=as_of.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S") if as_of else None
                           ), (400 if error else 200)


@bp.get("/reports/county.xlsx")
@declare(READERS, scoped=True)
@requires(*READERS)
def reports_xlsx() -> Any:
    user = db_user()
    county, period, _ = _params(user)
    with runtime().db.bulk_read() as s:  # the read replica when there is one
        report = rep.county_report(s, user.project_id, user, county, period, today_local())
    with runtime().db.write() as s:
        audit.record(s, user, "report.download", target=f"region:{county}", ip=client_ip(), period=period.key)
    labels = column_labels()
    headers = [t("Township"), t("Code"), *[labels[k] for k in rep.COLUMNS]]
    title = t("Care-file report of {county}, {period}", county=report.county_name, period=period.key)
    body = rep.report_xlsx(report, headers, title, notes(), t("Total"))
    resp = make_response(body)
    resp.headers["Content-Type"] = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    resp.headers["Content-Disposition"] = f"attachment; filename=report-{county}-{period.key}.xlsx"
    return resp
