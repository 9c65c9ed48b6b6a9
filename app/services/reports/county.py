"""What managers report: the monthly/quarterly county report and the dashboard's pictures.

Both read the same facts, scoped through app.services.access: each child of the `children` list
in the user's regions (file creation date, every version of the file) and the records about it
(submissions naming the child, with the record's own date). The counts are then taken in
Python, so the report and the charts agree by construction.

Definitions (a period is a range of local calendar dates, both ends included):
- on file: the file was opened by the end of the period and was not closed at its end;
- new files: opened in the period (`registered_on`, else the day the server created it);
- identified / assessed / visited: children with an identification / assessment / visit record
  dated in the period (the record's own date, one rule for every page: app.services.answers.record_date_key);
- referred: a referral record in the period with the guardian's consent;
- followed up: a follow-up record (referral and follow-up form) in the period;
- closed: the file's status became `closed` during the period (any path: form or page);
- risk levels: each open child's level as it stood at the end of the period;
- overdue: open children whose next follow-up date lay before the end of the period (or today).
"""
from __future__ import annotations

import calendar
import io
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.models import Dataset, Entity, EntityVersion, Form, FormVersion, Submission, SubmissionVersion, User
from app.services import access, regions, spreadsheets
from app.services.answers import LOCAL_TZ, answer_keys, iso_day, record_date_key, record_day
from app.services.children.store import CHILDREN, RISK_LEVELS
from app.services.schemas import schema_of

IDENTIFICATION, ASSESSMENT, VISIT, REFERRAL = "identification", "assessment", "visit_record", "referral_followup"
COUNTS = ("on_file", "new_files", "identified", "assessed", "visited", "referred", "followed_up", "closed",
          "overdue")
RISK_COUNTS = tuple(f"risk_{level}" for level in RISK_LEVELS)
COLUMNS = COUNTS + RISK_COUNTS


# ---------------------------------------------------------------- periods

@dataclass(frozen=True)
class Period:
    kind: str  # month | quarter
    start: date
    end: date  # inclusive

    @property
    def key(self) -> str:
        if self.kind == "month":
            return f"{self.start.year}-{self.start.month:02d}"
        return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


def month(year: int, m: int) -> Period:
    return Period("month", date(year, m, 1), date(year, m, calendar.monthrange(year, m)[1]))


def quarter(year: int, q: int) -> Period:
    first = 3 * (q - 1) + 1
    return Period("quarter", date(year, first, 1), month(year, first + 2).end)


def parse_period(text: str) -> Period:
    """'2026-11' (a month) or '2026-Q4' (a quarter); Problem 400 otherwise."""
    text = text.strip().upper()
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", text)
    if m and 1 <= int(m.group(2)) <= 12:
        return month(int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"(\d{4})-Q([1-4])", text)
    if m:
        return quarter(int(m.group(1)), int(m.group(2)))
    raise problems.NOT_A_PERIOD(text=text)


def quarter_of(day: date) -> Period:
    return quarter(day.year, (day.month - 1) // 3 + 1)


def last_months(today: date, n: int) -> list[Period]:
    out, y, m = [], today.year, today.month
    for _ in range(n):
        out.append(month(y, m))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


# ---------------------------------------------------------------- facts

@dataclass
class Record:
    form: str
    day: date
    data: dict[str, Any]


@dataclass
class ChildFacts:
    uuid: str
    region: str
    opened: date
    versions: list[tuple[date, dict[str, Any]]] = field(default_factory=list)  # (day, all properties after it)
    records: list[Record] = field(default_factory=list)
    _days: list[date] = field(default_factory=list, repr=False)  # the versions' days, for bisect

    def state_at(self, day: date) -> dict[str, Any] | None:
        """The file's properties at the end of day (None: not opened yet)."""
        if self.opened > day:
            return None
        if len(self._days) != len(self.versions):
            self._days = [at for at, _ in self.versions]
        i = bisect_right(self._days, day)
        return self.versions[i - 1][1] if i else {}

    def open_at(self, day: date) -> bool:
        state = self.state_at(day)
        return state is not None and state.get("status") != "closed"


def _local_day(at: datetime) -> date:
    return at.astimezone(LOCAL_TZ).date() if at.tzinfo else at.date()


# The answers the counts read besides the record's date (app.services.answers.record_date_key), by question
# name wherever the form's groups put them; fetched one by one in SQL, so a national database does not send
# every record's whole document to Python (bench/scale).
RECORD_NAMES = ("record_type", "ref_consent", "fu_service")
STATE_KEYS = ("status", "risk_level", "next_followup_due", "referral_status")
DAY = "_day"


def _picked(keys: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    return {k: v for k, v in zip(keys, values, strict=True) if v is not None}


def _record_keys(session: Session, project_id: int) -> dict[int, dict[str, str]]:
    """For every form version of the project: the stored key of each answer the counts read."""
    out: dict[int, dict[str, str]] = {}
    versions = session.scalars(select(FormVersion).join(Form, Form.id == FormVersion.form_id)
                               .where(Form.project_id == project_id))
    for fv in versions:
        schema = schema_of(fv)
        keys = answer_keys(schema, RECORD_NAMES)
        date_key = record_date_key(schema)
        if date_key:
            keys[DAY] = date_key
        out[fv.id] = keys
    return out


def load_facts(session: Session, project_id: int, user: User, within: str = "",
               where: Any = None) -> list[ChildFacts]:
    """The children in the user's regions (and inside `within`, a region code prefix) with their history.

    Records carry only their date and the answers in RECORD_NAMES, versions only STATE_KEYS (all that the counts
    use)."""
    access.require_reader(user)
    q = (select(Entity.id, Entity.uuid, Entity.region_code, Entity.created_at, Entity.data["registered_on"])
         .join(Dataset, Dataset.id == Entity.dataset_id)
         .where(Dataset.project_id == project_id, Dataset.name == CHILDREN, Entity.deleted_at.is_(None),
                access.region_filter(user, Entity.region_code)))
    if within:
        q = q.where(Entity.region_code.startswith(within, autoescape=True))
    if where is not None:  # a further condition on Entity (app.services.rollup: one county at a time)
        q = q.where(where)
    by_id: dict[int, ChildFacts] = {}
    for eid, uid, region, created, registered_on in session.execute(q):
        opened = iso_day(registered_on) or _local_day(created)
        by_id[eid] = ChildFacts(uid, region or "", opened)
    if not by_id:
        return []
    ids = q.with_only_columns(Entity.id).scalar_subquery()
    uuids = q.with_only_columns(Entity.uuid).scalar_subquery()
    by_uuid = {c.uuid: c for c in by_id.values()}
    days: dict[int, date] = {}  # submission id → the record's own date
    keys_of = _record_keys(session, project_id)
    stored = tuple(sorted({k for keys in keys_of.values() for k in keys.values()}))
    for sid, form_id, uid, created, fv_id, *picked in session.execute(
            select(Submission.id, Form.xml_form_id, Submission.entity_uuid, Submission.created_at,
                   SubmissionVersion.form_version_id, *[SubmissionVersion.data[k] for k in stored])
            .join(Form, Form.id == Submission.form_id)
            .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
            .where(Form.project_id == project_id, Submission.deleted_at.is_(None),
                   Submission.entity_uuid.in_(uuids))):
        child = by_uuid.get(uid)
        if child is not None:
            by_key = _picked(stored, tuple(picked))
            values = {name: by_key[key] for name, key in keys_of.get(fv_id, {}).items() if key in by_key}
            days[sid] = record_day(values, DAY, _local_day(created))
            child.records.append(Record(form_id, days[sid], values))
    # A version dates from the record that made it (offline work arrives late), else from its arrival.
    for eid, sid, created, *state in session.execute(
            select(EntityVersion.entity_id, EntityVersion.submission_id, EntityVersion.created_at,
                   *[EntityVersion.data[k] for k in STATE_KEYS])
            .where(EntityVersion.entity_id.in_(ids)).order_by(EntityVersion.entity_id, EntityVersion.version)):
        day = days[sid] if sid in days else _local_day(created)
        by_id[eid].versions.append((day, _picked(STATE_KEYS, tuple(state))))
    for c in by_id.values():
        c.versions.sort(key=lambda v: v[0])
        c.records.sort(key=lambda r: r.day)
    return list(by_id.values())


# ---------------------------------------------------------------- what happened to a child in a period

def _is_referral(r: Record) -> bool:
    return r.form == REFERRAL and r.data.get("record_type") == "referral" and r.data.get("ref_consent") == "yes"


def _is_followup(r: Record) -> bool:
    return r.form == REFERRAL and r.data.get("record_type") == "followup"


def child_counts(c: ChildFacts, period: Period, today: date) -> Counter[str]:
    """The report's counts for one child (each 0 or 1)."""
    out: Counter[str] = Counter()
    end_state = c.state_at(period.end)
    if end_state is None:
        return out
    in_period = [r for r in c.records if r.day in period]
    out["new_files"] = int(c.opened in period)
    out["identified"] = int(any(r.form == IDENTIFICATION for r in in_period))
    out["assessed"] = int(any(r.form == ASSESSMENT for r in in_period))
    out["visited"] = int(any(r.form == VISIT for r in in_period))
    out["referred"] = int(any(_is_referral(r) for r in in_period))
    out["followed_up"] = int(any(_is_followup(r) for r in in_period))
    before = c.state_at(period.start - timedelta(days=1))
    was_closed = before is not None and before.get("status") == "closed"
    closed = end_state.get("status") == "closed"
    out["closed"] = int(closed and not was_closed)
    if not closed:
        out["on_file"] = 1
        out[f"risk_{end_state.get('risk_level') or 'unassessed'}"] = 1
        due = str(end_state.get("next_followup_due") or "")
        out["overdue"] = int(bool(due) and due < min(period.end, today).isoformat())
    return out


# ---------------------------------------------------------------- the county report

@dataclass
class ReportRow:
    code: str
    name: str
    counts: dict[str, int]


@dataclass
class CountyReport:
    county: str
    county_name: str
    period: Period
    rows: list[ReportRow]
    totals: dict[str, int]
    generated: datetime


def _require_county(user: User, county: str) -> str:
    county = county.strip()
    if not re.fullmatch(r"\d{6}", county):
        raise problems.NOT_A_COUNTY_CODE(county=county)
    regions.validate_code(county)
    inside = user.role == "admin" or any(county.startswith(c) or c.startswith(county) for c in user.region_codes)
    if not inside:
        raise problems.NO_SUCH_COUNTY()
    return county


def county_report(session: Session, project_id: int, user: User, county: str, period: Period,
                  today: date) -> CountyReport:
    """Counts by township of one county for the period (only the townships in the user's regions)."""
    county = _require_county(user, county)
    facts = load_facts(session, project_id, user, within=county)
    by_town: dict[str, Counter[str]] = {}
    for town in regions.children(county):
        if user.role == "admin" or any(town.code.startswith(c) or c.startswith(town.code)
                                       for c in user.region_codes):
            by_town[town.code] = Counter()
    for c in facts:
        by_town.setdefault(c.region[:9], Counter()).update(child_counts(c, period, today))
    rows = [ReportRow(code, regions.name(code) or "", {k: counts.get(k, 0) for k in COLUMNS})
            for code, counts in sorted(by_town.items())]
    totals = {k: sum(r.counts[k] for r in rows) for k in COLUMNS}
    return CountyReport(county, regions.full_name(county) or county, period, rows, totals,
                        datetime.now(LOCAL_TZ))


def report_counties(user: User) -> list[regions.Region]:
    """The counties a user may report on: those inside, or containing, one of the user's regions."""
    names = regions.table().names
    return [regions.Region(code, name) for code, name in sorted(names.items())
            if len(code) == 6 and (user.role == "admin"
                                   or any(code.startswith(c) or c.startswith(code) for c in user.region_codes))]


# ---------------------------------------------------------------- the dashboard's pictures

@dataclass
class Pictures:
    months: list[Period]
    risk_by_month: list[dict[str, int]]  # per month: risk level → open children at the month's end
    coverage: list[tuple[str, int, int, int]]  # (area, open children, visited this quarter, not visited)
    overdue: list[tuple[str, int]]  # (area, overdue children)
    funnel: dict[str, int]  # referred, accepted, completed
    records_by_month: list[dict[str, int]]  # per month: form kind → records
    quarter: Period


VISIT_FORMS = (IDENTIFICATION, ASSESSMENT, VISIT, REFERRAL)


def area_length(user: User) -> int:
    """Group by one level below the user's broadest region (admin: prefectures)."""
    if user.role == "admin" or not user.region_codes:
        return 4
    shortest = min(len(c) for c in user.region_codes)
    return {2: 4, 4: 6, 6: 9, 9: 12}.get(shortest, 12)


@dataclass
class Tally:
    """The pictures' counts for the children of one region code. Additive: the pictures of any set of
    regions are the sum of their tallies (app.services.reports.rollup stores one per region code)."""

    risk_by_month: list[Counter[str]]  # per month: risk level → open children at the month's end
    open: int = 0  # open today
    visited: int = 0  # open and with a record this quarter
    overdue: int = 0  # open and the next follow-up before today
    funnel: Counter[str] = field(default_factory=Counter)
    kinds: list[Counter[str]] = field(default_factory=list)  # per month: form kind → records

    @classmethod
    def empty(cls, months: int) -> Tally:
        return cls([Counter() for _ in range(months)], kinds=[Counter() for _ in range(months)])

    def add(self, other: Tally) -> None:
        for mine, theirs in zip(self.risk_by_month, other.risk_by_month, strict=True):
            mine.update(theirs)
        for mine, theirs in zip(self.kinds, other.kinds, strict=True):
            mine.update(theirs)
        self.open += other.open
        self.visited += other.visited
        self.overdue += other.overdue
        self.funnel.update(other.funnel)

    def to_json(self) -> dict[str, Any]:
        return {"risk": [dict(c) for c in self.risk_by_month], "open": self.open, "visited": self.visited,
                "overdue": self.overdue, "funnel": dict(self.funnel), "kinds": [dict(c) for c in self.kinds]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tally:
        return cls([Counter(c) for c in d["risk"]], d["open"], d["visited"], d["overdue"], Counter(d["funnel"]),
                   [Counter(c) for c in d["kinds"]])


def tally(facts: list[ChildFacts], today: date, months: int = 12) -> dict[str, Tally]:
    """Each child's share of the pictures, summed per region code ("" = no region)."""
    periods = last_months(today, months)
    index = {p.key: i for i, p in enumerate(periods)}
    q = quarter_of(today)
    out: dict[str, Tally] = {}
    for c in facts:
        t = out.get(c.region)
        if t is None:
            t = out[c.region] = Tally.empty(months)
        for i, p in enumerate(periods):
            state = c.state_at(min(p.end, today))
            if state is not None and state.get("status") != "closed":
                t.risk_by_month[i][state.get("risk_level") or "unassessed"] += 1
        if c.open_at(today):
            t.open += 1
            t.visited += int(any(r.form in VISIT_FORMS and r.day in q for r in c.records))
            due = str((c.state_at(today) or {}).get("next_followup_due") or "")
            t.overdue += int(bool(due) and due < today.isoformat())
        seen = {str(d.get("referral_status") or "") for _, d in c.versions}
        completed = "closed" in seen or any(r.form == REFERRAL and r.data.get("fu_service") == "completed"
                                            for r in c.records)
        accepted = completed or "in_service" in seen
        referred = accepted or "referred" in seen or any(_is_referral(r) for r in c.records)
        t.funnel.update({"referred": int(referred), "accepted": int(accepted), "completed": int(completed)})
        for r in c.records:
            m = index.get(f"{r.day.year}-{r.day.month:02d}")
            if m is not None and r.form in VISIT_FORMS:
                t.kinds[m][r.form] += 1
    return out


def pictures_of(tallies: dict[str, Tally], user: User, today: date, months: int = 12) -> Pictures:
    """The pictures from the tallies of the regions in the user's scope (grouped by area_length)."""
    periods = last_months(today, months)
    length = area_length(user)
    total = Tally.empty(months)
    cov: dict[str, list[int]] = {}
    over: Counter[str] = Counter()
    for region, t in tallies.items():
        total.add(t)
        if t.open:  # an area is shown when it has open files
            row = cov.setdefault(region[:length], [0, 0])
            row[0] += t.open
            row[1] += t.visited
            over[region[:length]] += t.overdue
    coverage = [(a, n, v, n - v) for a, (n, v) in sorted(cov.items())]
    overdue = [(a, over[a]) for a in sorted(cov)]
    risk_by_month = [{level: counts.get(level, 0) for level in RISK_LEVELS} for counts in total.risk_by_month]
    by_month = [{k: counts.get(k, 0) for k in VISIT_FORMS} for counts in total.kinds]
    return Pictures(periods, risk_by_month, coverage, overdue,
                    {k: total.funnel.get(k, 0) for k in ("referred", "accepted", "completed")}, by_month,
                    quarter_of(today))


def pictures(session: Session, project_id: int, user: User, today: date, months: int = 12) -> Pictures:
    return pictures_of(tally(load_facts(session, project_id, user), today, months), user, today, months)


def report_xlsx(report: CountyReport, headers: list[str], title: str, notes: list[str], total: str) -> bytes:
    """The county report as one worksheet: a title line, then township, code and one column per count. Every
    row through the spreadsheet-safe writer (place names come from `regions load`)."""
    wb = Workbook()
    ws = wb.active
    ws.title = report.period.key

    def add(values: list[Any]) -> None:
        ws.append(spreadsheets.row(values))

    add([title])
    ws["A1"].font = Font(bold=True, size=13)
    add([report.county_name, report.county, report.period.start.isoformat(), report.period.end.isoformat()])
    add([])
    add(headers)
    for cell in ws[4]:
        cell.font = Font(bold=True)
    for row in report.rows:
        add([row.name or row.code, row.code, *[row.counts[k] for k in COLUMNS]])
    add([total, report.county, *[report.totals[k] for k in COLUMNS]])
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)
    add([])
    for note in notes:
        add([note])
    ws.column_dimensions["A"].width = 22
    ws.column_dimensions["B"].width = 12
    ws.freeze_panes = "C5"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
