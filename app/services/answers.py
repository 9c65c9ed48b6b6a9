"""Reading stored answers (a leaf every area may use).

A submission's values are stored with keys relative to the form's root, so a question inside a
group is `grp_child/child_name`. Code that looks for a question by name (the duplicate check, case
work, reports) finds it wherever the form put it.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from forms import FormSchema


def answer(values: dict[str, Any], name: str) -> Any:
    """The value of the question `name`, whatever group it sits in (None when there is none)."""
    if name in values:
        return values[name]
    for key, value in values.items():
        if key.rsplit("/", 1)[-1] == name:
            return value
    return None


def answer_key(values: dict[str, Any], name: str) -> str | None:
    """The stored key of the question `name` (e.g. `grp_child/id_number`), or None."""
    if name in values:
        return name
    return next((k for k in values if k.rsplit("/", 1)[-1] == name), None)


# ---------------------------------------------------------------- the record's own date

# A record's own date: the form's date question with one of these names (visit_date, the assessor's
# assessment_date, the referral form's record_date, the registration's registered_on …), wherever it sits
# in groups; a form without one is
# dated by the day it was filled on the phone (the `today` preload, else `start`); only a form with none
# of these is dated by the day the server received it. One rule for reports, the dashboard's charts, the
# child's timeline and every list that shows a record's date.
# The work happens in China (one zone, UTC+8, no daylight saving): "today", a record's day and report
# periods are China dates.
LOCAL_TZ = timezone(timedelta(hours=8))


def local_today() -> date:
    return datetime.now(LOCAL_TZ).date()


RECORD_DATE_NAMES = ("visit_date", "assessment_date", "record_date", "interview_date", "followup_date",
                     "registered_on")
FILLED_ON_NAMES = ("today", "start")
DATE_TYPES = ("date", "dateTime", "string")  # a date question, or a calculation giving a date (registered_on)


def record_date_key(schema: FormSchema) -> str | None:
    """The stored key (path relative to the root) of the form's own date question, or None."""
    base = f"/{schema.root}/"
    by_name: dict[str, str] = {}
    for f in schema.fields:
        if f.type in DATE_TYPES and f.repeat is None and f.path.startswith(base):
            by_name.setdefault(f.name, f.path[len(base):])
    for name in RECORD_DATE_NAMES + FILLED_ON_NAMES:
        if name in by_name:
            return by_name[name]
    return None


def answer_keys(schema: FormSchema, names: tuple[str, ...]) -> dict[str, str]:
    """The stored keys of the questions with these names (outside repeats), wherever their groups put them."""
    base = f"/{schema.root}/"
    out: dict[str, str] = {}
    for f in schema.fields:
        if f.name in names and f.repeat is None and f.path.startswith(base) and f.type not in ("group", "repeat"):
            out.setdefault(f.name, f.path[len(base):])
    return out


def iso_day(value: Any) -> date | None:
    """The calendar day of an ISO date or date-time answer (`2026-05-03`, `2026-05-03T10:00:00+08:00`)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def record_day(values: dict[str, Any], key: str | None, received_day: date) -> date:
    """The record's own date by `record_date_key`, else the day it was received."""
    day = iso_day(values.get(key)) if key else None
    return day or received_day
