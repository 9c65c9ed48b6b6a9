"""Children: the list (search, filters, pages) and the child file (一人一档), printable on A4.

Also the template helpers the manager pages share: risk levels, statuses and region names in
the UI language, local dates.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import render_template, request

from app import params
from app.errors import Problem
from app.i18n import current_language, form_label, t
from app.runtime import runtime
from app.services import audit, childfile
from app.services import dashboard as dash
from app.services.records import LOCAL_TZ

from . import bp, client_ip, db_user, register_nav, requires

ROLES = ("admin", "coordinator", "manager")
PAGE_SIZE = 50


def _value_labels() -> dict[str, dict[str, str]]:
    return {
        "risk_level": {"unassessed": t("Not assessed"), "green": t("Green"), "yellow": t("Yellow"),
                       "orange": t("Orange"), "red": t("Red")},
        "status": {"registered": t("Registered"), "healthy": t("Healthy"), "watch": t("Watch"),
                   "refer": t("Refer for assessment"), "urgent": t("Urgent"), "closed": t("Closed")},
        "referral_status": {"none": t("Not referred"), "referred": t("Referred"), "in_service": t("In service"),
                            "closed": t("Service completed")},
        "conflict": {"soft": t("Soft conflict"), "hard": t("Hard conflict")},
    }


def _property_labels() -> dict[str, str]:
    return {
        "status": t("Status"), "risk_level": t("Risk level"), "referral_status": t("Referral status"),
        "next_followup_due": t("Next follow-up"), "last_identified": t("Last identification"),
        "id_score": t("Identification score"), "last_assessed": t("Last assessment"),
        "assess_score": t("Assessment score"), "last_visit": t("Last visit"),
        "flag_reidentify": t("Re-identify"), "last_followup": t("Last follow-up"),
        "prefecture": t("Prefecture"), "county": t("County"), "township": t("Township"), "village": t("Village"),
        "gender": t("Sex"), "birth_date": t("Date of birth"), "category": t("Category"),
        "registered_on": t("Registered on"), "label": t("Name (masked)"),
    }


@bp.app_template_global("mgr_value")
def mgr_value(prop: str, value: Any) -> str:
    """A property's value in the UI language (risk levels, statuses …); other values as they are."""
    if value is None or value == "":
        return "—"
    return _value_labels().get(prop, {}).get(str(value), str(value))


@bp.app_template_global("mgr_prop")
def mgr_prop(prop: str) -> str:
    return _property_labels().get(prop, prop)


@bp.app_template_global("mgr_risk_class")
def mgr_risk_class(level: str | None) -> str:
    return level if level in ("red", "orange", "yellow", "green") else ""


@bp.app_template_global("mgr_local")
def mgr_local(at: datetime | str | None, with_time: bool = True) -> str:
    """A UTC time as local (Beijing) time."""
    if at is None or at == "":
        return ""
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            return str(at)
    if at.tzinfo is None:
        return at.isoformat(sep=" ", timespec="minutes") if with_time else at.date().isoformat()
    local = at.astimezone(LOCAL_TZ)
    return local.strftime("%Y-%m-%d %H:%M") if with_time else local.strftime("%Y-%m-%d")


@bp.app_template_global("mgr_region")
def mgr_region(code: str | None, names: dict[str, dict[str, str]] | None = None) -> str:
    if not code:
        return t("No region")
    labels = (names or {}).get(code)
    if not labels:
        return code
    return f"{form_label(labels)} ({code})"


def today_local() -> date:
    return datetime.now(LOCAL_TZ).date()


register_nav(15, "web.children", "Children", ROLES)


@bp.get("/children")
@requires(*ROLES)
def children() -> Any:
    user = db_user()
    args = request.args
    try:
        page = params.integer(args.get("page"), "page", default=1, minimum=1, maximum=1_000_000) or 1
    except Problem:
        page = 1  # a hand-edited page number shows the first page
    region = "".join(ch for ch in args.get("region", "") if ch.isdigit())[:12]
    risk = args.get("risk_level", "") if args.get("risk_level", "") in childfile.RISK_LEVELS else ""
    status = args.get("status", "") if args.get("status", "") in childfile.STATUSES else ""
    overdue = args.get("overdue") in ("1", "on", "yes")
    q = args.get("q", "").strip()[:100]
    today = today_local()
    with runtime().db.session() as s:
        rows, total = childfile.list_children(s, user.project_id, user, q=q, region=region, risk_level=risk,
                                              status=status, overdue_on=today if overdue else None,
                                              limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        names = dash.region_names(s, user.project_id)
    regions = sorted(c for c in names if _visible(user, c))
    filters = {"q": q, "region": region, "risk_level": risk, "status": status, "overdue": "1" if overdue else ""}
    return render_template("children/list.html", rows=rows, total=total, page=page, page_size=PAGE_SIZE,
                           filters={k: v for k, v in filters.items() if v}, names=names, regions=regions,
                           risk_levels=childfile.RISK_LEVELS, statuses=childfile.STATUSES,
                           overdue_ids={r.uuid for r in rows if childfile.is_overdue(r, today)})


def _visible(user: Any, code: str) -> bool:
    if user.role == "admin":
        return True
    return any(code.startswith(c) for c in user.region_codes)


@bp.get("/children/<uid>")
@requires(*ROLES)
def children_view(uid: str) -> Any:
    user = db_user()
    rt = runtime()
    with rt.db.write() as s:
        file = childfile.child_file(s, user.project_id, user, uid)
        audit.record(s, user, "child.view", target=f"child:{file['child']['uuid']}", ip=client_ip(),
                     unmasked=file["unmasked"])
        names = dash.region_names(s, user.project_id)
    today = today_local()
    return render_template("children/file.html", file=file, child=file["child"], names=names,
                           overdue=childfile.is_overdue(file["child"], today), today=today.isoformat(),
                           lang=current_language())
