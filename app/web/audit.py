"""The audit log (administrators only): who did what, when, from where; filters and keyset pages.

Times are stored in UTC and shown in China Standard Time (Asia/Shanghai, UTC+8, no daylight
saving); the date filters are China dates too.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from flask import render_template, request, url_for

from app import params
from app.errors import Problem
from app.i18n import t
from app.models import AuditEvent
from app.runtime import runtime
from app.services import audit

from . import bp, register_nav, requires
from .children import case_label
from .submissions import mgr_review
from .users import role_label

register_nav(60, "web.audit_index", "Audit log", ("admin",))

PAGE_SIZE = 50
# China has one zone without daylight saving: a fixed offset needs no tz database on the server.
ZONE = timezone(timedelta(hours=8), "Asia/Shanghai")
ZONE_LABEL = "Asia/Shanghai (UTC+8)"

ACTION_LABELS = audit.ACTIONS  # the words of every action: app/services/audit.py
DETAIL_LABELS = audit.DETAILS  # and of every detail
VALUE_LABELS = {"reset": "reset", "throttled": "too many failed attempts", "True": "yes", "False": "no"}
# How a person reached the server (details "via" and "channel").
CHANNEL_LABELS = {"web": "the website", "api": "the API", "basic": "the API (password)", "cli": "the command line",
                  "phone": "ODK Collect", "openrosa": "ODK Collect"}
# Results of a paper form entered or corrected in the browser (detail "status" of submission.web_*).
STATUS_LABELS = {"created": "new record", "edited": "edited", "duplicate": "already received"}


# What an event's target names (the text before ':' in "child:<uuid>"), in words.
TARGET_KINDS = {"child": "Child file", "user": "User", "form": "Form", "submission": "Submission",
                "held": "Held change", "export": "Export", "dataset": "Entity list", "entity": "Entity",
                "region": "Region"}


def readable_target(target: str | None) -> dict[str, str]:
    """{'kind': words, 'ref': the id, 'url': the child's file for a child} for the page."""
    kind, _, ref = (target or "").partition(":")
    if not ref or kind not in TARGET_KINDS:
        return {"kind": "", "ref": target or "", "url": ""}
    url = url_for("web.children_view", uid=ref) if kind == "child" else ""
    return {"kind": t(TARGET_KINDS[kind]), "ref": ref, "url": url}


def local_time(at: datetime) -> str:
    return at.astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S")


def _value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        v = str(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) or "—"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_value(x)}" for k, x in v.items())
    text = str(v)
    return t(VALUE_LABELS[text]) if text in VALUE_LABELS else (text or "—")


def readable_details(action: str, details: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(label, text) pairs; in a user.update a change is stored as [old, new] and reads "old → new"."""
    out = []
    for key, v in (details or {}).items():
        label = t(DETAIL_LABELS[key]) if key in DETAIL_LABELS else key.replace("_", " ")
        if key == "role":
            v = [role_label(x) if isinstance(x, str) else x for x in v] if isinstance(v, list) else role_label(str(v))
        elif key == "reason" and action == "child.close":
            v = case_label("close", str(v))
        elif key in ("state", "previous") and action == "submission.review":
            v = mgr_review(str(v)) if v else "—"
        elif key in ("via", "channel") and str(v) in CHANNEL_LABELS:
            v = t(CHANNEL_LABELS[str(v)])
        elif key == "status" and action.startswith("submission.web_") and str(v) in STATUS_LABELS:
            v = t(STATUS_LABELS[str(v)])
        if action == "user.update" and isinstance(v, list) and len(v) == 2:
            text = f"{_value(v[0])} → {_value(v[1])}"
        else:
            text = _value(v)
        out.append((label, text))
    return out


def _day(text: str) -> date | None:
    try:
        day = date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None
    return day if day is None or 1900 <= day.year <= 9998 else None  # year 1 in UTC+8 is not a UTC time


@bp.get("/audit")
@requires("admin")
def audit_index() -> Any:
    args = request.args
    filters = {k: args.get(k, "").strip() for k in ("action", "user", "target", "from", "to")}
    errors = []
    since = until = None
    day_from, day_to = _day(filters["from"]), _day(filters["to"])
    if filters["from"] and day_from is None:
        errors.append(t("'{value}' is not a date: use YYYY-MM-DD.", value=filters["from"]))
    if filters["to"] and day_to is None:
        errors.append(t("'{value}' is not a date: use YYYY-MM-DD.", value=filters["to"]))
    if day_from:
        since = datetime.combine(day_from, time(0), ZONE)
    if day_to:
        until = datetime.combine(day_to + timedelta(days=1), time(0), ZONE)  # the whole "to" day
    before = args.get("before_id", "")
    try:
        before_id = params.integer(before, "before_id", minimum=1, maximum=params.MAX_ID)
    except Problem:
        before_id = None  # a hand-edited link shows the newest events
    with runtime().db.session() as s:
        events: list[AuditEvent] = audit.search(
            s, action=filters["action"], username=filters["user"], target=filters["target"], since=since,
            until=until, before_id=before_id, limit=PAGE_SIZE + 1)
        rows = [{"id": e.id, "at": local_time(e.at), "iso": e.at.astimezone(ZONE).isoformat(timespec="seconds"),
                 "username": e.username, "action": e.action,
                 "action_label": t(ACTION_LABELS[e.action]) if e.action in ACTION_LABELS else "",
                 "target": readable_target(e.target), "ip": e.ip, "details": readable_details(e.action, e.details)}
                for e in events[:PAGE_SIZE]]
    kept: dict[str, Any] = {k: v for k, v in filters.items() if v}
    next_url = (url_for("web.audit_index", **kept, before_id=rows[-1]["id"])
                if len(events) > PAGE_SIZE else None)
    first_url = url_for("web.audit_index", **kept) if before_id else None
    return render_template("audit/index.html", rows=rows, filters=filters, errors=errors, next_url=next_url,
                           first_url=first_url, zone=ZONE_LABEL, actions=sorted(ACTION_LABELS),
                           action_labels=ACTION_LABELS), (400 if errors else 200)
