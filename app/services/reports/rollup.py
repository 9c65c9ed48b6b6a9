"""The dashboard at national scale: its figures per region code, computed ahead of time.

The dashboard's pictures follow every child's whole history (app.services.reports): with a million
children and five million records that takes minutes, far too long for a page view (docs/benchmarks.md,
"National scale"). `carefile dashboard refresh` (from cron, e.g. every 15 minutes) computes the figures
once for every region code — one county at a time, so memory stays bounded — and stores one row per
code (DashboardRollup), with the submissions per week of the code (a submission's own region, else its
child's). A dashboard then sums the rows of the user's regions: the same numbers as the
live computation at the time of the refresh, because both add up the same per-region tallies.

The dashboard uses the stored figures only for a large scope (more than CAREFILE_DASHBOARD_LIVE_UP_TO
children: a prefecture, the province; a county is computed live, so it is exact right after a change) and
only while they are fresh: computed for today (local day) and at most CAREFILE_DASHBOARD_MAX_AGE seconds
ago; otherwise (a small deployment without the cron job, or a stopped one) it computes everything live.
The care-file problems (entity events that failed or wait) are always read live (an index on their status).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from app.models import DashboardRollup, Dataset, Entity, Form, Submission, User
from app.models.base import utcnow
from app.services import access
from app.services.children.store import CHILDREN, REFERRAL_STATUSES, RISK_LEVELS, STATUSES, overdue_condition
from app.services.reports import county as reports
from app.services.reports.dashboard import UNKNOWN, Breakdown, _scopes, week_buckets

PROPS = ("risk_level", "status")
KNOWN = {"risk_level": RISK_LEVELS, "status": STATUSES, "referral_status": REFERRAL_STATUSES}


@dataclass
class Figures:
    """The stored figures of the regions in one user's scope."""

    computed_at: datetime
    rows: dict[str, dict[str, Any]]  # region code → body

    def children_by(self, user: User, prop: str) -> Breakdown:
        """As dashboard.children_by: children per region one level below the user's, per value."""
        known = KNOWN[prop]
        out = Breakdown(columns=known)
        for prefix, length in _scopes(user):
            for code, body in self.rows.items():
                if not code.startswith(prefix):
                    continue
                region = code[:length] or UNKNOWN
                for value, n in body["by"][prop].items():
                    bucket = out.rows.setdefault(region, {})
                    key = value or (known[0] if prop == "risk_level" else "")
                    bucket[key] = bucket.get(key, 0) + int(n)
        out.rows = dict(sorted(out.rows.items()))
        return out

    def overdue_count(self) -> int:
        return sum(int(b["overdue"]) for b in self.rows.values())

    def conflict_count(self) -> int:
        return sum(int(b["conflicts"]) for b in self.rows.values())

    def pictures(self, user: User, today: date) -> reports.Pictures:
        """As reports.pictures: the regions' tallies summed per area first (plain lists: fast for 5,000+
        villages), then drawn as the live pictures are (pictures_of only sums and groups by area)."""
        length = reports.area_length(user)
        areas: dict[str, list[int]] = {}
        for code, b in self.rows.items():
            key = code[:length]
            acc = areas.get(key)
            areas[key] = list(b["vec"]) if acc is None else [x + y for x, y in zip(acc, b["vec"], strict=True)]
        return reports.pictures_of({a: _from_vector(v) for a, v in areas.items()}, user, today)

    def weeks(self, today: date) -> list[tuple[date, int]]:
        """As dashboard.submissions_per_week for the user whose regions these rows are."""
        starts, _, _ = week_buckets(today)
        totals = [0] * len(starts)
        for b in self.rows.values():
            for i, n in enumerate(b["weeks"]):
                totals[i] += n
        return list(zip(starts, totals, strict=True))


MONTHS = 12
FUNNEL = ("referred", "accepted", "completed")


def _vector(t: reports.Tally) -> list[int]:
    """A tally as a flat list in a fixed order: what the pictures show of it (known risk levels, the
    visit forms, the funnel's steps) and nothing else."""
    out = [t.risk_by_month[m].get(level, 0) for m in range(MONTHS) for level in RISK_LEVELS]
    out += [t.kinds[m].get(form, 0) for m in range(MONTHS) for form in reports.VISIT_FORMS]
    return out + [t.open, t.visited, t.overdue] + [t.funnel.get(k, 0) for k in FUNNEL]


def _from_vector(v: list[int]) -> reports.Tally:
    nr, nk = len(RISK_LEVELS), len(reports.VISIT_FORMS)
    risk = [Counter(dict(zip(RISK_LEVELS, v[m * nr:(m + 1) * nr], strict=True))) for m in range(MONTHS)]
    base = MONTHS * nr
    kinds = [Counter(dict(zip(reports.VISIT_FORMS, v[base + m * nk:base + (m + 1) * nk], strict=True)))
             for m in range(MONTHS)]
    rest = v[base + MONTHS * nk:]
    return reports.Tally(risk, rest[0], rest[1], rest[2], Counter(dict(zip(FUNNEL, rest[3:], strict=True))), kinds)


def current(session: Session, project_id: int, user: User, today: date, max_age: int,
            now: datetime | None = None, live_up_to: int = 0) -> Figures | None:
    """The stored figures for the user's regions, or None (then the dashboard computes live) when there are
    none for today, they are older than max_age seconds, or the user's regions hold at most `live_up_to`
    children: a county's figures are computed live in well under a second, so they are exact the moment a
    change is approved, where stored figures would lag until the next refresh."""
    if max_age <= 0:
        return None
    if live_up_to > 0:
        in_scope = (select(Entity.id).join(Dataset, Dataset.id == Entity.dataset_id)
                    .where(Dataset.project_id == project_id, Dataset.name == CHILDREN, Entity.deleted_at.is_(None),
                           access.region_filter(user, Entity.region_code))
                    .limit(live_up_to + 1).subquery())
        if (session.scalar(select(func.count()).select_from(in_scope)) or 0) <= live_up_to:
            return None
    newest = session.execute(select(DashboardRollup.day, DashboardRollup.computed_at)
                             .where(DashboardRollup.project_id == project_id).limit(1)).first()
    now = now or utcnow()
    if newest is None or newest.day != today or newest.computed_at < now - timedelta(seconds=max_age):
        return None
    q = select(DashboardRollup.region_code, DashboardRollup.body).where(DashboardRollup.project_id == project_id)
    if user.role != "admin":
        codes = user.region_codes
        if not codes:
            return Figures(newest.computed_at, {})
        q = q.where(or_(*[DashboardRollup.region_code.startswith(c, autoescape=True) for c in codes]))
    rows = {code: body for code, body in session.execute(q) if access.covers(user, code)}
    return Figures(newest.computed_at, rows)


def _chunks(session: Session, project_id: int) -> list[Any]:
    """Conditions splitting the children into counties (plus one for codes shorter than a county)."""
    base = (select(func.substr(Entity.region_code, 1, 6)).join(Dataset, Dataset.id == Entity.dataset_id)
            .where(Dataset.project_id == project_id, Dataset.name == CHILDREN, Entity.deleted_at.is_(None),
                   func.length(Entity.region_code) >= 6).distinct())
    counties = sorted(c for (c,) in session.execute(base))
    out: list[Any] = [Entity.region_code.startswith(c, autoescape=True) for c in counties]
    out.append(or_(Entity.region_code.is_(None), func.length(Entity.region_code) < 6))
    return out


def _sql_counts(session: Session, project_id: int, today: date, where: Any) -> dict[str, dict[str, Any]]:
    """Per region code: children per risk level and status, overdue follow-ups, conflicts (as the live
    dashboard's SQL counts them)."""
    out: dict[str, dict[str, Any]] = {}

    def base() -> Any:
        return (select(func.coalesce(Entity.region_code, UNKNOWN)).join(Dataset, Dataset.id == Entity.dataset_id)
                .where(Dataset.project_id == project_id, Dataset.name == CHILDREN, Entity.deleted_at.is_(None),
                       where))

    def body(code: str) -> dict[str, Any]:
        return out.setdefault(code, {"by": {p: {} for p in PROPS}, "overdue": 0, "conflicts": 0})

    for prop in PROPS:
        sub = base().add_columns(func.coalesce(Entity.data[prop].as_string(), "").label("value")).subquery()
        cols = list(sub.c)
        for code, value, n in session.execute(select(cols[0], cols[1], func.count()).group_by(cols[0], cols[1])):
            body(code)["by"][prop][value] = int(n)
    for key, cond in (("overdue", overdue_condition(today)), ("conflicts", Entity.conflict.is_not(None))):
        sub = base().where(cond).subquery()
        col = list(sub.c)[0]
        for code, n in session.execute(select(col, func.count()).group_by(col)):
            body(code)[key] = int(n)
    return out


def _empty_counts() -> dict[str, Any]:
    return {"by": {p: {} for p in PROPS}, "overdue": 0, "conflicts": 0}


def _weeks(session: Session, project_id: int, today: date) -> dict[str, list[int]]:
    """Submissions per week per region code: the submission's own region, or for a submission without one
    its child's (whom access.submission_filter shows it to); "" = neither (only admins see those)."""
    starts, bucket, since = week_buckets(today)
    out: dict[str, list[int]] = {}
    base = (select(bucket).join(Form, Form.id == Submission.form_id)
            .where(Form.project_id == project_id, Submission.deleted_at.is_(None), since))
    own = base.add_columns(Submission.region_code.label("region")).where(Submission.region_code.is_not(None))
    child = (base.add_columns(func.coalesce(Entity.region_code, UNKNOWN).label("region"))
             .outerjoin(Dataset, and_(Dataset.project_id == project_id, Dataset.name == CHILDREN))
             .outerjoin(Entity, and_(Entity.dataset_id == Dataset.id, Entity.uuid == Submission.entity_uuid))
             .where(Submission.region_code.is_(None)))
    for q in (own, child):
        sub = q.subquery()
        for week, region, n in session.execute(select(sub.c.week, sub.c.region, func.count())
                                               .group_by(sub.c.week, sub.c.region)):
            if 0 <= week < len(starts):
                out.setdefault(region or UNKNOWN, [0] * len(starts))[week] += int(n)
    return out


def refresh(session: Session, project_id: int, today: date,
            progress: Callable[[int, int], None] | None = None, source: Session | None = None) -> int:
    """Compute and store the figures of every region code for `today`; returns how many codes.

    Reads one county at a time from `source` (the read replica's session, Database.bulk_read; else
    `session`); the stored rows are replaced in `session` in one transaction at the end (the caller
    commits), so dashboards see either the old or the new figures. Figures read from a replica that lags
    are stamped with the time of the last change it had applied."""
    started = utcnow()
    src = source if source is not None else session
    as_of = src.info.get("as_of")
    if as_of is not None and as_of < started:
        started = as_of
    reader = User(role="admin", project_id=project_id, username="rollup", active=True)  # transient: never stored
    rows: dict[str, dict[str, Any]] = {}
    chunks = _chunks(src, project_id)
    for i, where in enumerate(chunks):
        counts = _sql_counts(src, project_id, today, where)
        tallies = reports.tally(reports.load_facts(src, project_id, reader, where=where), today, MONTHS)
        for code in set(counts) | set(tallies):
            body = counts.get(code) or _empty_counts()
            body["vec"] = _vector(tallies.get(code) or reports.Tally.empty(MONTHS))
            rows[code] = body
        src.expunge_all()
        if progress is not None:
            progress(i + 1, len(chunks))
    for code, weeks in _weeks(src, project_id, today).items():
        rows.setdefault(code, {**_empty_counts(), "vec": _vector(reports.Tally.empty(MONTHS))})["weeks"] = weeks
    n_weeks = len(week_buckets(today)[0])
    for body in rows.values():
        body.setdefault("weeks", [0] * n_weeks)
    session.execute(delete(DashboardRollup).where(DashboardRollup.project_id == project_id))
    session.add_all(DashboardRollup(project_id=project_id, region_code=code, day=today, computed_at=started,
                                    body=body) for code, body in rows.items())
    session.flush()
    return len(rows)


__all__ = ["Figures", "current", "refresh"]
