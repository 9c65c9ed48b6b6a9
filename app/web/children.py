"""Children: the list (search, filters, pages) and the child file (一人一档), printable on A4.

Also the template helpers the manager pages share: risk levels, statuses and region names in
the UI language, local dates.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from flask import flash, g, redirect, render_template, request, url_for

from app import params
from app.errors import Problem
from app.i18n import current_language, form_label, t
from app.routeaccess import COORDINATORS, READERS, declare
from app.runtime import runtime
from app.services import access, audit
from app.services import children as child_service
from app.services.answers import LOCAL_TZ
from app.services.children import casework, childfile, duplicates
from app.services.children.vocabulary import Vocabulary
from app.services.reports import dashboard as dash

from . import bp, client_ip, db_user, register_nav, requires, retried
from .places import place_label

PLACE_KEYS = frozenset(("prefecture", "county", "township", "village"))

ROLES = ("admin", "coordinator", "manager")
PAGE_SIZE = 50
# Totals above this show as "more than 10,000 children" (counting every match of a province-wide filter reads
# all their rows); narrowing the filter gives the exact number.
COUNT_LIMIT = 10_000


def _value_labels() -> dict[str, dict[str, str]]:
    return {
        "risk_level": {"unassessed": t("Not assessed"), "green": t("Green"), "yellow": t("Yellow"),
                       "orange": t("Orange"), "red": t("Red")},
        "status": {"registered": t("Registered"), "healthy": t("Healthy"), "watch": t("Watch"),
                   "refer": t("Refer for assessment"), "urgent": t("Urgent"), "closed": t("Closed")},
        "referral_status": {"none": t("Not referred"), "referred": t("Referred"), "in_service": t("In service"),
                            "closed": t("Service completed")},
        "conflict": {"soft": t("Soft conflict"), "hard": t("Hard conflict")},
        "flag_reidentify": {"yes": t("Yes"), "no": t("No")},
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
        "full_name": t("Full name"), "guardian_name": t("Guardian"), "id_number": t("ID number"),
        "region_code": t("Region"), "created_at": t("File created"),
    }


def _words() -> Vocabulary:
    """The forms' words for the children list's codes (app.services.children.vocabulary), once per request."""
    words: Vocabulary | None = g.get("carefile_words")
    if words is None:
        with runtime().db.session() as s:
            words = child_service.vocabulary(s, db_user().project_id)
        g.carefile_words = words
    return words


@bp.app_template_global("mgr_value")
def mgr_value(prop: str, value: Any) -> str:
    """A property's value in the UI language: the care file's statuses and levels in the site's own words,
    other choices (sex, categories, yes/no …) in the words of the form that saved them, places by name;
    a value no form names (a date, a score) as it is."""
    if value is None or value == "":
        return "—"
    if prop in PLACE_KEYS:
        return place_label(str(value))
    own = _value_labels().get(prop, {}).get(str(value))
    if own is not None:
        return own
    labels = _words().value(prop, value)
    if labels:
        return ("、" if current_language() == "zh" else ", ").join(form_label(lab) for lab in labels)
    return str(value)


@bp.app_template_global("mgr_prop")
def mgr_prop(prop: str) -> str:
    """A property's name in the UI language: the site's words, else the question of the form that saves it."""
    own = _property_labels().get(prop)
    if own is not None:
        return own
    question = _words().question(prop)
    return form_label(question) if question else prop


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


def local_midnight(day: date | None) -> datetime | None:
    """The start of a local calendar day (the day a child was registered, as people in the county count)."""
    return datetime.combine(day, time(0), LOCAL_TZ) if day is not None else None


register_nav(15, "web.children", "Children", ROLES)
register_nav(16, "web.children_duplicates", "Duplicates", COORDINATORS)


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
    risk = args.get("risk_level", "") if args.get("risk_level", "") in child_service.RISK_LEVELS else ""
    status = args.get("status", "") if args.get("status", "") in child_service.STATUSES else ""
    overdue = args.get("overdue") in ("1", "on", "yes")
    q = args.get("q", "").strip()[:100]
    today = today_local()
    created_from, created_to = params.day(args.get("created_from"), "created_from"), \
        params.day(args.get("created_to"), "created_to")
    registered_by = args.get("registered_by", "").strip()[:100]
    with runtime().db.session() as s:
        rows, total = childfile.list_children(
            s, user.project_id, user, q=q, region=region, risk_level=risk, status=status,
            overdue_on=today if overdue else None, created_from=local_midnight(created_from),
            created_before=local_midnight(created_to + timedelta(days=1) if created_to else None),
            created_by=registered_by,
            limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, count_limit=COUNT_LIMIT)
        names = dash.region_names(s, user.project_id)
    regions = sorted(c for c in names if _visible(user, c))
    filters = {"q": q, "region": region, "risk_level": risk, "status": status, "overdue": "1" if overdue else "",
               "created_from": created_from.isoformat() if created_from else "",
               "created_to": created_to.isoformat() if created_to else "", "registered_by": registered_by}
    capped = total > COUNT_LIMIT  # not counted to the end: a full page may have a next one
    has_next = total > page * PAGE_SIZE or (capped and len(rows) == PAGE_SIZE)
    return render_template("children/list.html", rows=rows, total=total, capped=capped, count_limit=COUNT_LIMIT,
                           has_next=has_next, page=page, page_size=PAGE_SIZE,
                           filters={k: v for k, v in filters.items() if v}, names=names, regions=regions,
                           risk_levels=child_service.RISK_LEVELS, statuses=child_service.STATUSES,
                           overdue_ids={r.uuid for r in rows if child_service.is_overdue(r, today)},
                           identifying=access.sees_sensitive(user), trash_days=child_service.trash.TRASH_DAYS)


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
        adult_soon = casework.may_close_as_adult(child_service.get_child(s, user.project_id, user, uid), today_local())
        audit.record(s, user, "child.view", target=f"child:{file.child.uuid}", ip=client_ip(),
                     unmasked=file.unmasked)
        names = dash.region_names(s, user.project_id)
    today = today_local()
    return render_template("children/file.html", file=file, child=file.child, names=names,
                           overdue=child_service.is_overdue(file.child, today), today=today.isoformat(),
                           lang=current_language(), pairs=file.duplicates, close_reasons=casework.CLOSE_REASONS,
                           adult_soon=adult_soon,
                           may_merge=user.role in access.COORDINATORS, trash_days=child_service.trash.TRASH_DAYS)


# ---------------------------------------------------------------- case work (issue 12)


def _close_reason_labels() -> dict[str, str]:
    return {"turned18": t("Turned 18"), "risk_resolved": t("Risk resolved, follow-up finished"),
            "moved": t("Moved out of the province"), "deceased": t("Deceased"),
            "consent_withdrawn": t("Guardian withdrew consent"), "other": t("Other (say why)")}


def _reason_labels() -> dict[str, str]:
    return {"id_number": t("Same ID number"), "name_birth": t("Same name and date of birth"),
            "similar_name": t("Similar name, birth date within a month, same township"),
            "manual": t("Marked by a coordinator")}


@bp.app_template_global("case_label")
def case_label(kind: str, value: str | None) -> str:
    """Labels of close reasons, duplicate reasons and server-side actions in the UI language."""
    if not value:
        return "—"
    table = {"close": _close_reason_labels(), "reason": _reason_labels(),
             "action": {"transfer": t("Moved"), "close": t("Closed"), "reopen": t("Reopened"),
                        "merge": t("Merged")}}.get(kind, {})
    return table.get(value, value)


@bp.get("/children/duplicates")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
def children_duplicates() -> Any:
    user = db_user()
    with runtime().db.session() as s:
        pairs = childfile.duplicate_pairs(s, user.project_id, user, status="open")
        names = dash.region_names(s, user.project_id)
    return render_template("children/duplicates.html", pairs=pairs, names=names)


def _refused(uid: str, problem: Problem) -> Any:
    """Case work the service refused for what was asked (a wrong village, a reason that does not fit): back
    to the child's file, its case-work forms at hand, saying why. A child not found stays an error."""
    if problem.status == 404:
        raise problem
    flash(problem.translated(t))
    return redirect(url_for("web.children_view", uid=uid) + "#case-actions")


@bp.post("/children/<uid>/merge")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
@retried
def children_merge(uid: str) -> Any:
    user = db_user()
    with runtime().db.write() as s:
        survivor = duplicates.merge(s, user.project_id, user, uid, request.form.get("into", "").strip().lower(),
                                    note=request.form.get("note", ""), ip=client_ip())
        target = survivor.uuid
    flash(t("The two files were merged into this one."))
    return redirect(url_for("web.children_view", uid=target))


@bp.post("/children/<uid>/distinct")
@declare(COORDINATORS, scoped=True)
@requires(*COORDINATORS)
@retried
def children_distinct(uid: str) -> Any:
    user = db_user()
    with runtime().db.write() as s:
        duplicates.mark_distinct(s, user.project_id, user, uid, request.form.get("other", "").strip().lower(),
                                 ip=client_ip())
    flash(t("Marked as not the same child; the pair will not be flagged again."))
    return redirect(request.form.get("back") == "file" and url_for("web.children_view", uid=uid)
                    or url_for("web.children_duplicates"))


@bp.post("/children/<uid>/transfer")
@declare(READERS, scoped=True, note="coordinators anywhere; managers when both villages lie in their regions")
@requires(*ROLES)
@retried
def children_transfer(uid: str) -> Any:
    user = db_user()
    try:
        with runtime().db.write() as s:
            casework.transfer(s, user.project_id, user, uid, request.form.get("village", ""),
                              note=request.form.get("note", ""), ip=client_ip())
    except Problem as problem:
        return _refused(uid, problem)
    flash(t("The child was moved to the new village."))
    if user.role in access.COORDINATORS or _visible(user, request.form.get("village", "").strip()):
        return redirect(url_for("web.children_view", uid=uid))
    return redirect(url_for("web.children"))


@bp.post("/children/<uid>/close")
@declare(READERS, scoped=True)
@requires(*ROLES)
@retried
def children_close(uid: str) -> Any:
    user = db_user()
    try:
        with runtime().db.write() as s:
            casework.close(s, user.project_id, user, uid, request.form.get("reason", ""),
                           note=request.form.get("note", ""), ip=client_ip())
    except Problem as problem:
        return _refused(uid, problem)
    flash(t("The case was closed."))
    return redirect(url_for("web.children_view", uid=uid))


@bp.post("/children/<uid>/reopen")
@declare(READERS, scoped=True)
@requires(*ROLES)
@retried
def children_reopen(uid: str) -> Any:
    user = db_user()
    try:
        with runtime().db.write() as s:
            casework.reopen(s, user.project_id, user, uid, note=request.form.get("note", ""), ip=client_ip())
    except Problem as problem:
        return _refused(uid, problem)
    flash(t("The case was reopened."))
    return redirect(url_for("web.children_view", uid=uid))


@bp.get("/children/turning18")
@declare(READERS, scoped=True)
@requires(*ROLES)
def children_turning18() -> Any:
    user = db_user()
    today = today_local()
    with runtime().db.session() as s:
        rows = childfile.turning_18(s, user.project_id, user, today, 90)
        names = dash.region_names(s, user.project_id)
    return render_template("children/turning18.html", rows=rows, names=names)
