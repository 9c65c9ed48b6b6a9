"""The managers' overview: children by risk level and status per region, overdue follow-ups,
submissions per week. SQL aggregates only (portable between SQLite and PostgreSQL), scoped to
the user's regions.

Grouping expressions are computed in a subquery and grouped by its columns: PostgreSQL does not
see two copies of `substr(region_code, 1, $1)` with different bind parameters as the same
expression.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from app.models import Dataset, Entity, EntityEvent, Form, Submission, SubmissionVersion, User
from app.models.base import UTCDateTime
from app.services import access, regions
from app.services.answers import LOCAL_TZ
from app.services.children.store import CHILDREN, REFERRAL_STATUSES, RISK_LEVELS, STATUSES, overdue_condition
from app.services.forms import schema_of
from app.services.submissions.records import visible

NEXT_LEVEL = {2: 4, 4: 6, 6: 9, 9: 12, 12: 12}
UNKNOWN = ""  # children without a region code


@dataclass
class Breakdown:
    """Counts per (region, value): rows are regions one level below the user's, columns the values."""

    columns: tuple[str, ...]
    rows: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {c: 0 for c in self.columns}
        for counts in self.rows.values():
            for k, n in counts.items():
                out[k] = out.get(k, 0) + n
        return out

    @property
    def extra_columns(self) -> list[str]:
        """Values found in the data that are not among the known ones (shown after them)."""
        seen = {k for counts in self.rows.values() for k in counts}
        return sorted(seen - set(self.columns))

    def total_of(self, region: str) -> int:
        return sum(self.rows.get(region, {}).values())

    @property
    def grand_total(self) -> int:
        return sum(self.totals.values())


def _scopes(user: User) -> list[tuple[str, int]]:
    """(region prefix, length of the codes to group by): the user's regions, one level down."""
    if user.role == "admin":
        return [("", 4)]
    return [(c, NEXT_LEVEL.get(len(c), len(c))) for c in user.region_codes]


def _children_base(project_id: int, user: User) -> Any:
    return (select(Entity).join(Dataset, Dataset.id == Entity.dataset_id)
            .where(Dataset.project_id == project_id, Dataset.name == CHILDREN, Entity.deleted_at.is_(None),
                   access.region_filter(user, Entity.region_code)))


def children_by(session: Session, project_id: int, user: User, prop: str) -> Breakdown:
    """Children per region (one level below the user's regions) and per value of a property."""
    access.require_reader(user)
    known = {"risk_level": RISK_LEVELS, "status": STATUSES, "referral_status": REFERRAL_STATUSES}[prop]
    out = Breakdown(columns=known)
    for prefix, length in _scopes(user):
        base = _children_base(project_id, user)
        if prefix:
            base = base.where(Entity.region_code.startswith(prefix, autoescape=True))
        sub = base.with_only_columns(
            func.coalesce(func.substr(Entity.region_code, 1, length), UNKNOWN).label("region"),
            func.coalesce(Entity.data[prop].as_string(), "").label("value"),
        ).subquery()
        q = select(sub.c.region, sub.c.value, func.count()).group_by(sub.c.region, sub.c.value)
        for region, value, n in session.execute(q):
            bucket = out.rows.setdefault(region or UNKNOWN, {})
            key = value or (known[0] if prop == "risk_level" else "")
            bucket[key] = bucket.get(key, 0) + int(n)
    out.rows = dict(sorted(out.rows.items()))
    return out


def overdue_count(session: Session, project_id: int, user: User, today: date) -> int:
    access.require_reader(user)
    q = _children_base(project_id, user).where(overdue_condition(today))
    return int(session.scalar(select(func.count()).select_from(q.subquery())) or 0)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def submissions_per_week(session: Session, project_id: int, user: User, today: date,
                         weeks: int = 12) -> list[tuple[date, int]]:
    """Submissions received per week (Monday to Sunday, local time), the last `weeks` weeks, oldest first."""
    access.require_reader(user)
    starts, bucket, since = week_buckets(today, weeks)
    sub = (select(bucket)
           .join(Form, Form.id == Submission.form_id)
           .where(Form.project_id == project_id, Submission.deleted_at.is_(None), since,
                  visible(user, project_id))).subquery()
    counts: dict[int, int] = dict(session.execute(select(sub.c.week, func.count()).group_by(sub.c.week)).all())
    return [(d, int(counts.get(i, 0))) for i, d in enumerate(starts)]


def week_buckets(today: date, weeks: int = 12) -> tuple[list[date], Any, Any]:
    """The weeks' first days (oldest first), a submission's week number (SQL) and the condition "received
    in those weeks" (shared with app.services.rollup)."""
    starts = [week_start(today) - timedelta(weeks=i) for i in range(weeks - 1, -1, -1)]
    bounds = [datetime.combine(d, time(0), tzinfo=LOCAL_TZ) for d in starts]
    bucket = case(*[(Submission.created_at >= literal(b, UTCDateTime()), i)
                    for i, b in reversed(list(enumerate(bounds)))], else_=-1).label("week")
    return starts, bucket, Submission.created_at >= literal(bounds[0], UTCDateTime())


class RegionNames(Mapping[str, dict[str, str]]):
    """Names of region codes ({language: name}): the division table (app.services.regions) first,
    then the choice lists of the published forms. Every code resolves; iterating lists only the
    province, prefecture and county codes plus the forms' own (what a region filter offers)."""

    def __init__(self, from_forms: dict[str, dict[str, str]]) -> None:
        self._forms = from_forms

    def __getitem__(self, code: str) -> dict[str, str]:
        found = regions.name(code)
        if found:
            return {"": found}
        return self._forms[code]

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and (regions.exists(code) or code in self._forms)

    def _codes(self) -> list[str]:
        table = regions.table().names
        return sorted({c for c in table if len(c) <= 6} | set(self._forms))

    def __iter__(self) -> Iterator[str]:
        return iter(self._codes())

    def __len__(self) -> int:
        return len(self._codes())


def region_names(session: Session, project_id: int) -> RegionNames:
    """Names of region codes: the division table, and the choice lists of the published forms."""
    names: dict[str, dict[str, str]] = {}
    for form in session.scalars(select(Form).where(Form.project_id == project_id)):
        if form.current_version is None:
            continue
        for f in schema_of(form.current_version).fields:
            for c in f.choices:
                if c.value.isdigit() and len(c.value) in NEXT_LEVEL and c.labels:
                    names.setdefault(c.value, c.labels)
    return RegionNames(names)


@dataclass
class EntityProblem:
    at: datetime
    status: str  # error | backlog
    code: str | None
    message: str
    form_id: str
    instance_id: str
    entity_uuid: str | None


def entity_problems(session: Session, project_id: int, user: User, limit: int = 20) -> list[EntityProblem]:
    """Care-file updates that did not apply (errors) or wait for an earlier offline update (backlog)."""
    q = (select(EntityEvent, Form.xml_form_id, Submission.instance_id)
         .join(SubmissionVersion, SubmissionVersion.id == EntityEvent.submission_version_id)
         .join(Submission, Submission.id == SubmissionVersion.submission_id)
         .join(Form, Form.id == Submission.form_id)
         .where(Form.project_id == project_id, EntityEvent.status.in_(("error", "backlog")),
                Submission.deleted_at.is_(None), visible(user, project_id))
         .order_by(EntityEvent.id.desc()).limit(limit))
    return [EntityProblem(e.created_at, e.status, e.code, e.message, fid, iid, e.entity_uuid)
            for e, fid, iid in session.execute(q)]


def conflict_count(session: Session, project_id: int, user: User) -> int:
    q = _children_base(project_id, user).where(Entity.conflict.is_not(None))
    return int(session.scalar(select(func.count()).select_from(q.subquery())) or 0)
