"""One child, one file (一人一档): the read models of the care file, built already redacted for the reader.

Every answer that carries a child — the children list, a child's whole file, duplicate pairs, the
turning-18 list, the answers of case work — is built here, through the user's Redactor
(app.services.access.redact): labels built from sensitive data become pseudonyms (儿童 A3F2), sensitive
answers and files are withheld, and identifying details (full name, guardian, from the child directory)
are filled in only for users entitled to them. HTTP layers render these objects; they never assemble
child fields themselves.

A record belongs to a child when its meta/entity block names the child (Submission.entity_uuid):
the registration that created the child and every identification, assessment, visit and
referral that picked the child from children.csv. A record's date is its own (the form's date
question: app.services.answers.record_date_key), not the day it reached the server.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select, union_all
from sqlalchemy.orm import Session, aliased

from app.models import (
    ChildDirectory,
    DuplicateCandidate,
    Entity,
    EntityVersion,
    Form,
    FormVersion,
    Submission,
    SubmissionVersion,
    User,
)
from app.models.entity import squeezed
from app.services import access
from app.services.answers import iso_day, record_date_key
from app.services.children import directory
from app.services.children.store import CHILDREN, STATUS_PROPS, children_query, get_child, overdue_condition
from app.services.children.store import history as entity_history
from app.services.children.vocabulary import Vocabulary, vocabulary
from app.services.schemas import schema_of

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")


# ---------------------------------------------------------------- one child in a list


@dataclass
class ChildSummary:
    """A child as lists show it. The identifying details (full_name, guardian_name, id_number) are None
    unless the reader is entitled to them; birth_date and gender are masked where the forms mark them
    sensitive."""

    uuid: str
    label: str
    region_code: str | None
    version: int
    status: str | None
    risk_level: str | None
    referral_status: str | None
    next_followup_due: str | None
    conflict: str | None
    updated_at: str
    created_at: str | None = None  # when the file was opened on the server
    birth_date: str | None = None
    gender: str | None = None
    full_name: str | None = None
    guardian_name: str | None = None
    id_number: str | None = None

    @classmethod
    def of(cls, e: Entity, red: access.Redactor, found: ChildDirectory | None = None) -> ChildSummary:
        """The child as `red`'s user may see it (`found`: its directory row, read with it)."""
        data = red.entity_properties(CHILDREN, e.data or {})
        label = e.label if e.anonymised_at is not None else red.child_label(CHILDREN, e.uuid, e.label)
        out = cls(uuid=e.uuid, label=label, region_code=e.region_code, version=e.version,
                  status=data.get("status") or None, risk_level=data.get("risk_level") or None,
                  referral_status=data.get("referral_status") or None,
                  next_followup_due=data.get("next_followup_due") or None, conflict=e.conflict,
                  updated_at=e.updated_at.isoformat(), created_at=e.created_at.isoformat(),
                  birth_date=data.get("birth_date") or None,
                  gender=data.get("gender") or None)
        if red.show and found is not None and e.anonymised_at is None:
            out.full_name, out.guardian_name, out.id_number = found.full_name, found.guardian_name, found.id_number
        return out

    def json(self) -> dict[str, Any]:
        """The API's shape: identifying details only when present (entitled readers)."""
        return {k: v for k, v in asdict(self).items()
                if v is not None or k not in ("full_name", "guardian_name", "id_number", "gender")}


def _directory_of(session: Session, entities: list[Entity]) -> dict[int, ChildDirectory]:
    if not entities:
        return {}
    rows = session.scalars(select(ChildDirectory).where(ChildDirectory.entity_id.in_([e.id for e in entities])))
    return {r.entity_id: r for r in rows}


def summaries(session: Session, project_id: int, user: User, entities: list[Entity]) -> list[ChildSummary]:
    """Read models of children already read (case work's answers): redacted for the user."""
    red = access.Redactor(session, user, project_id)
    found = _directory_of(session, entities) if red.show else {}
    return [ChildSummary.of(e, red, found.get(e.id)) for e in entities]


def summary(session: Session, project_id: int, user: User, entity: Entity) -> ChildSummary:
    return summaries(session, project_id, user, [entity])[0]


def label_contains(session: Session, text: str) -> ColumnElement[bool]:
    """The label contains the text. On PostgreSQL also the squeezed label the squeezed text (implied by the
    first, so the answers are the same): its trigram index finds few more rows than the matching ones, where
    the label's own index finds every label with the same one-letter words (扎, 女) and reads all of them."""
    if session.get_bind().dialect.name != "postgresql":
        return Entity.label.contains(text, autoescape=True)
    # strpos: the same test as the LIKE, which the planner would also look up in the label's own trigram
    # index — 30,000 candidates for `扎*（女，2015`, and every label for a text too short for a trigram
    # (`卓玛`: 1.7 s at 1,000,000 children, bench/scale).
    same = func.strpos(Entity.label, text) > 0
    if sum(ch.isalnum() for ch in text) < 3:  # no trigram: the squeezed index would return every label too
        return same
    return and_(squeezed(Entity.label).like(literal("%") + squeezed(literal(text)) + literal("%")), same)


def list_children(session: Session, project_id: int, user: User, *, q: str = "", region: str = "",
                  risk_level: str = "", status: str = "", overdue_on: date | None = None,
                  created_from: datetime | None = None, created_before: datetime | None = None,
                  created_by: str = "", limit: int = 50, offset: int = 0,
                  count_limit: int | None = None) -> tuple[list[ChildSummary], int]:
    """A page of the children the user may see, and how many match (with `count_limit`: counted up to one
    more than the limit, so a total above it means "more than count_limit" — counting every one of a
    province's 120,000 overdue children reads all their rows, bench/scale).

    Search (`q`): a user entitled to identifying details finds a child by the label, the full name, its
    pinyin or initials, the ID number or the guardian (the child directory); everyone else by the label
    when labels are not built from sensitive data, else by the pseudonym (儿童 A3F2)."""
    query = children_query(session, project_id, user)
    red = access.Redactor(session, user, project_id)
    show = red.show or CHILDREN not in red.lists
    search_names = bool(q) and red.show
    if q and not red.show and show:
        query = query.where(label_contains(session, q))
    elif q and not red.show:  # labels may be built from names: search the pseudonym (儿童 A3F2) instead
        query = query.where(Entity.uuid.startswith(q.replace("儿童", "").strip().lower(), autoescape=True))
    if region:
        query = query.where(Entity.region_code.startswith(region, autoescape=True))
    if risk_level:
        query = query.where(Entity.data["risk_level"].as_string() == risk_level)
    if status:
        query = query.where(Entity.data["status"].as_string() == status)
    if overdue_on is not None:
        query = query.where(overdue_condition(overdue_on))
    if created_from is not None:
        query = query.where(Entity.created_at >= created_from)
    if created_before is not None:
        query = query.where(Entity.created_at < created_before)
    if created_by:  # the user name of who made the first version: the registration's submitter, or the API user
        first = (select(EntityVersion.entity_id)
                 .outerjoin(SubmissionVersion, SubmissionVersion.id == EntityVersion.submission_version_id)
                 .join(User, User.id == func.coalesce(SubmissionVersion.submitter_id, EntityVersion.user_id))
                 .where(EntityVersion.version == 1, User.username == created_by, User.project_id == project_id))
        query = query.where(Entity.id.in_(first))
    if search_names:
        total, rows = _search_names(session, query, q, limit, offset, count_limit)
    else:
        counted = query.with_only_columns(Entity.id).limit(count_limit + 1) if count_limit is not None else query
        total = session.scalar(select(func.count()).select_from(counted.subquery())) or 0
        order = (Entity.label, Entity.id) if show else (Entity.uuid,)
        rows = list(session.scalars(query.order_by(*order).limit(limit).offset(offset)))
    found = _directory_of(session, rows) if red.show else {}
    return [ChildSummary.of(e, red, found.get(e.id)) for e in rows], int(total)


def _either(query: Any, by_label: Any, by_directory: Any) -> Any:
    """The children of `query` whose label or directory row matches, as one pass (in name order when asked)."""
    return query.outerjoin(ChildDirectory, ChildDirectory.entity_id == Entity.id).where(
        or_(by_label, by_directory) if by_directory is not None else by_label)


def _search_names(session: Session, query: Any, q: str, limit: int, offset: int,
                  count_limit: int | None) -> tuple[int, list[Entity]]:
    """The children of `query` whose label or directory row (name, pinyin, initials, ID number, guardian)
    contains the text — how many (up to count_limit + 1), and a page of them in name order.

    Counted in two branches, each through its own trigram index: the directory's, then the label's without
    the children the first has (an OR over the two tables of a join can use neither index: 2.5 s at
    1,000,000 children, bench/scale). The page: when the matches are few (up to count_limit), their ids and
    labels are sorted and only the page's children read by id — a page read cold is about the rows it shows;
    when they are many (a common name: one child in six), walking the names in order finds a page's worth
    after a few hundred rows, which sorting every match would not."""
    key = directory.search_key(q)
    by_label = label_contains(session, q.strip())
    by_directory = ChildDirectory.search_text.contains(key, autoescape=True) if key else None
    if sum(ch.isalnum() for ch in q) < 3:
        # No trigram in the text: no index helps, and one pass over the children in name order stops soonest
        # (a two-letter given name is common: 79 ms for `卓玛` this way, 1.2 s through the branches).
        dense = _either(query, by_label, by_directory)
        counted_all = dense.with_only_columns(Entity.id)
        if count_limit is not None:
            counted_all = counted_all.limit(count_limit + 1)
        total = int(session.scalar(select(func.count()).select_from(counted_all.subquery())) or 0)
        return total, list(session.scalars(dense.order_by(Entity.label, Entity.id).limit(limit).offset(offset)))
    branches = [query.where(by_label).with_only_columns(Entity.id, Entity.label)]
    if by_directory is not None:
        branches.insert(0, query.join(ChildDirectory, ChildDirectory.entity_id == Entity.id)
                        .where(by_directory).with_only_columns(Entity.id, Entity.label))
        branches[1] = branches[1].where(~Entity.id.in_(select(ChildDirectory.entity_id).where(by_directory)))
    found = union_all(*branches).subquery() if len(branches) > 1 else branches[0].subquery()
    counted = select(found.c.id)
    if count_limit is not None:
        counted = counted.limit(count_limit + 1)
    total = int(session.scalar(select(func.count()).select_from(counted.subquery())) or 0)
    if count_limit is not None and total > count_limit:  # many: walk the names in order
        dense = _either(query, by_label, by_directory)
        return total, list(session.scalars(dense.order_by(Entity.label, Entity.id).limit(limit).offset(offset)))
    ids = list(session.scalars(select(found.c.id).order_by(found.c.label, found.c.id).limit(limit).offset(offset)))
    loaded = {e.id: e for e in session.scalars(select(Entity).where(Entity.id.in_(ids)))} if ids else {}
    return total, [loaded[i] for i in ids if i in loaded]


def overdue_children(session: Session, project_id: int, user: User, today: date,
                     limit: int = 200) -> dict[str, list[ChildSummary]]:
    """Children whose next follow-up date has passed, grouped by region code."""
    rows, _ = list_children(session, project_id, user, overdue_on=today, limit=limit)
    grouped: dict[str, list[ChildSummary]] = {}
    for row in sorted(rows, key=lambda r: (r.next_followup_due or "", r.label)):
        grouped.setdefault(row.region_code or "", []).append(row)
    return grouped


# ---------------------------------------------------------------- turning 18


@dataclass
class TurningEighteen(ChildSummary):
    turns_18_on: str = ""
    days_left: int = 0


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def turning_18(session: Session, project_id: int, user: User, today: date, days: int = 90,
               limit: int = 500) -> list[TurningEighteen]:
    """Open cases of children who turn 18 after today and within `days` days (hand-over planning)."""
    born_after = _years_before(today, 18)  # born on this day: 18 today (already turned)
    born_until = _years_before(today + timedelta(days=days), 18)
    birth = Entity.data["birth_date"].as_string()
    q = (children_query(session, project_id, user)
         .where(Entity.closed_at.is_(None), birth > born_after.isoformat(), birth <= born_until.isoformat() + "~")
         .order_by(birth, Entity.id).limit(limit))
    entities = list(session.scalars(q))
    out = []
    for e, row in zip(entities, summaries(session, project_id, user, entities), strict=True):
        birth_date = date.fromisoformat(str((e.data or {}).get("birth_date"))[:10])
        eighteen = birth_date.replace(year=birth_date.year + 18) if not (
            birth_date.month == 2 and birth_date.day == 29) else date(birth_date.year + 18, 3, 1)
        out.append(TurningEighteen(**asdict(row), turns_18_on=eighteen.isoformat(),
                                   days_left=(eighteen - today).days))
    return out


# ---------------------------------------------------------------- likely duplicates


@dataclass
class DuplicatePair:
    """Two children who may be the same child, each as the reader may see it; `differences` lists the
    details (name, date of birth, village, guardian, ID number) that differ between them."""

    id: int
    reasons: list[str]
    status: str
    created_at: str
    children: list[ChildSummary]
    differences: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "reasons": self.reasons, "status": self.status, "created_at": self.created_at,
                "differences": self.differences,
                "children": [c.json() for c in self.children]}


COMPARED = ("full_name", "birth_date", "region_code", "guardian_name", "id_number", "gender")


def duplicate_pairs(session: Session, project_id: int, user: User, status: str = "open",
                    uid: str | None = None, limit: int = 200) -> list[DuplicatePair]:
    """Candidate pairs whose two children both lie in the user's regions (newest first)."""
    access.require_reader(user)
    red = access.Redactor(session, user, project_id)
    ea, eb = aliased(Entity), aliased(Entity)
    q = (select(DuplicateCandidate, ea, eb)
         .join(ea, ea.id == DuplicateCandidate.entity_a_id).join(eb, eb.id == DuplicateCandidate.entity_b_id)
         .where(access.region_filter(user, ea.region_code),  # type: ignore[arg-type]
                access.region_filter(user, eb.region_code)))  # type: ignore[arg-type]
    if status:
        q = q.where(DuplicateCandidate.status == status)
    if uid:
        q = q.where(or_(ea.uuid == uid, eb.uuid == uid))
    rows = list(session.execute(q.order_by(DuplicateCandidate.id.desc()).limit(limit)))
    found = _directory_of(session, [e for _, a, b in rows for e in (a, b)]) if red.show else {}
    out = []
    for pair, a, b in rows:
        children = [ChildSummary.of(a, red, found.get(a.id)), ChildSummary.of(b, red, found.get(b.id))]
        differences = [k for k in COMPARED
                       if getattr(children[0], k) not in (None, "", access.MASK)
                       and getattr(children[1], k) not in (None, "", access.MASK)
                       and getattr(children[0], k) != getattr(children[1], k)]
        out.append(DuplicatePair(pair.id, list(pair.reasons or []), pair.status, pair.created_at.isoformat(),
                                 children, differences))
    return out


# ---------------------------------------------------------------- the whole file


@dataclass
class ChildRecord:
    """One record of the child's file (a registration, identification, assessment, visit, referral…)."""

    submission_id: int
    summary: list[list[Any]]  # what the record changed in the file: [[property, value], …]
    images: list[str]
    form_id: str
    form_title: str
    form_version: str
    instance_id: str
    instance_name: str | None
    date: str  # the record's own date (YYYY-MM-DD), else the day and time it was received
    received_at: str
    review_state: str
    submitter_id: int | None
    edited: bool
    values: dict[str, Any]
    repeats: list[dict[str, Any]]
    attachments: list[dict[str, Any]]


@dataclass
class HistoryEntry:
    """One version of the child's entity: what changed, by which record or case-work action."""

    version: int
    label: str
    changed: dict[str, Any]
    at: str
    submission_id: int | None
    conflict: str | None
    conflicting_properties: list[str] | None
    form_id: str | None
    instance_id: str | None
    action: str | None
    note: str | None
    merged_from: str | None


@dataclass
class ChildFile:
    """Everything recorded about one child, in time order, as the reader may see it."""

    child: ChildSummary
    closed_at: str | None
    close_reason: str | None
    anonymised: bool
    properties: dict[str, Any]
    unmasked: bool  # identifying details were shown: audit the view as such
    masked: bool  # something was withheld from this reader
    records: list[ChildRecord]
    history: list[HistoryEntry]
    duplicates: list[DuplicatePair]
    words: Vocabulary  # the forms' words for the stored codes (app.services.children.vocabulary)

    def json(self) -> dict[str, Any]:
        """The API's shape of the file."""
        return {"child": self.child.json(), "closed_at": self.closed_at, "close_reason": self.close_reason,
                "anonymised": self.anonymised, "properties": self.properties, "unmasked": self.unmasked,
                "masked": self.masked, "records": [asdict(r) for r in self.records],
                "history": [asdict(h) for h in self.history],
                "duplicates": [p.json() for p in self.duplicates]}


def _record_date(values: dict[str, Any], key: str | None, received: str) -> str:
    day = iso_day(values.get(key)) if key else None
    return day.isoformat() if day else received


def child_file(session: Session, project_id: int, user: User, uid: str) -> ChildFile:
    """The child's whole file: current state, every record in time order, entity history, likely duplicates.

    Sensitive answers, files and a label built from them are masked unless the user may see them
    (app.services.access); `unmasked` tells the caller to audit the view as one of identifying data.
    """
    child = get_child(session, project_id, user, uid)
    red = access.Redactor(session, user, project_id)
    rows = session.execute(
        select(Submission, SubmissionVersion, Form, FormVersion)
        .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
        .join(Form, Form.id == Submission.form_id)
        .join(FormVersion, FormVersion.id == SubmissionVersion.form_version_id)
        .where(Form.project_id == project_id, Submission.deleted_at.is_(None),
               # the child's own records, and a household's that registered it among others (several entities)
               or_(Submission.entity_uuid == child.uuid,
                   and_(Submission.entity_uuid.is_(None), Submission.id.in_(
                       select(EntityVersion.submission_id).where(EntityVersion.entity_id == child.id,
                                                                 EntityVersion.submission_id.is_not(None)))))))
    history_rows = entity_history(session, child)
    merged_from = _merged_history(session, child)
    history_rows = sorted(history_rows + list(merged_from), key=lambda v: (v.created_at, v.id))
    changed_by = {v.submission_id: v.data_received for v in history_rows if v.submission_id is not None}
    records = []
    sensitive_props = red.entity_properties(CHILDREN, {p: "x" for p in (child.data or {})})
    for sub, sv, form, fv in rows:
        received = sub.created_at.isoformat()
        changed = red.entity_properties(CHILDREN, changed_by.get(sub.id) or {})
        schema = schema_of(fv)
        withheld = red.withheld_files(schema, sv.data or {}, sv.repeat_rows)
        records.append(ChildRecord(
            submission_id=sub.id,
            summary=[[k, v] for k, v in changed.items() if k != "label" and v not in (None, "")],
            images=[a.name for a in sv.attachments if a.blob_key is not None and a.name not in withheld and (
                (a.content_type or "").startswith("image/") or a.name.lower().endswith(IMAGE_EXTENSIONS))],
            form_id=form.xml_form_id, form_title=fv.title, form_version=fv.version, instance_id=sub.instance_id,
            instance_name=red.instance_name(schema, sv.instance_name),
            date=_record_date(sv.data or {}, record_date_key(schema), received),
            received_at=received, review_state=sub.review_state, submitter_id=sub.submitter_id,
            edited=sv.deprecated_id is not None, values=red.values(schema, sv.data or {}),
            repeats=[{"repeat": r.repeat, "ordinal": r.ordinal, "values": red.values(schema, r.data or {}, r.repeat)}
                     for r in sv.repeat_rows],
            attachments=[{"name": a.name, "present": a.blob_key is not None, "size": a.size,
                          "content_type": a.content_type} for a in sv.attachments if a.name not in withheld]))
    records.sort(key=lambda r: (r.date, r.received_at))
    by_id = {r.submission_id: r for r in records}
    history = [HistoryEntry(
        version=v.version, label=red.child_label(CHILDREN, child.uuid, v.label),
        changed=red.entity_properties(CHILDREN, v.data_received or {}), at=v.created_at.isoformat(),
        submission_id=v.submission_id, conflict=v.conflict, conflicting_properties=v.conflicting_properties,
        form_id=by_id[v.submission_id].form_id if v.submission_id in by_id else None,
        instance_id=by_id[v.submission_id].instance_id if v.submission_id in by_id else None,
        # Server-side versions (transfer, close, reopen, merge) and versions of merged files.
        action=v.action, note=v.note, merged_from=merged_from.get(v)) for v in history_rows]
    head = summary(session, project_id, user, child)
    masked_any = any(v == access.MASK for v in sensitive_props.values())
    return ChildFile(
        child=head, closed_at=child.closed_at.isoformat() if child.closed_at else None,
        close_reason=child.close_reason, anonymised=child.anonymised_at is not None,
        properties=red.entity_properties(CHILDREN, child.data or {}), unmasked=red.show,
        masked=not red.show and (masked_any or head.label != child.label), records=records, history=history,
        duplicates=duplicate_pairs(session, project_id, user, status="open", uid=child.uuid),
        words=vocabulary(session, project_id))


def _merged_history(session: Session, child: Entity) -> dict[EntityVersion, str]:
    """Entity versions of the files merged into this child, each with the merged file's uuid."""
    rows = session.execute(select(EntityVersion, Entity.uuid).join(Entity, Entity.id == EntityVersion.entity_id)
                           .where(Entity.dataset_id == child.dataset_id, Entity.merged_into == child.uuid))
    return {v: uid for v, uid in rows}


__all__ = ["STATUS_PROPS", "ChildFile", "ChildRecord", "ChildSummary", "DuplicatePair", "HistoryEntry",
           "TurningEighteen", "child_file", "duplicate_pairs", "get_child", "list_children", "overdue_children",
           "summaries", "summary", "turning_18"]
