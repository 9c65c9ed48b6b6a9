"""Likely duplicate children: found on registration, listed for coordinators, merged or kept apart.

A new child is compared with the children of the same province (the registering scope lies
inside it) by what its registration recorded:
- `id_number`: the same national ID number (exact). The number is a sensitive answer of the
  registration, not an entity property: it is looked up in the child directory, which keeps each
  child's current registration answers (app/services/children/directory.py);
- `name_birth`: the same name (after normalising spaces and the middle dot) and birth date;
- `similar_name`: a similar name + birth date within a month + the same township (first 9
  digits of the village code). Tibetan names are written several ways in Chinese (扎西 / 扎喜 /
  札西): names are compared as toneless pinyin, allowing one letter of difference.
A pair is stored once (duplicate_candidate) with its reasons; "distinct" pairs are never
flagged again. Merging keeps both histories on the survivor (see merge()).
"""
from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pypinyin import lazy_pinyin
from sqlalchemy import and_, bindparam, literal_column, or_, select, update
from sqlalchemy.orm import Session

from app import problems
from app.models import (
    ChildDirectory,
    DuplicateCandidate,
    Entity,
    Submission,
    SubmissionVersion,
    User,
    utcnow,
)
from app.prepared import Prepared
from app.services import access, audit, events
from app.services.answers import answer
from app.services.children.store import bump_revision, follow_child, locked_child, server_version

NAME_FIELDS = ("child_name", "full_name", "name")
MAX_CANDIDATES = 500  # children of one province born within a month of each other that are compared


@dataclass
class Facts:
    name: str
    id_number: str
    birth: date | None
    township: str
    province: str


def _norm_name(name: str) -> str:
    name = unicodedata.normalize("NFKC", name or "")
    return "".join(ch for ch in name if not ch.isspace() and ch not in "·•.-_").lower()


def pinyin_key(name: str) -> str:
    """Toneless pinyin of a name (Latin letters kept, lower-case): 扎西, 扎喜 and 札西 all give 'zhaxi'."""
    return "".join(lazy_pinyin(_norm_name(name))).lower()


def _edit_distance(a: str, b: str, limit: int = 2) -> int:
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def similar_names(a: str, b: str) -> bool:
    ka, kb = pinyin_key(a), pinyin_key(b)
    if not ka or not kb:
        return False
    return ka == kb or (min(len(ka), len(kb)) >= 4 and _edit_distance(ka, kb, 1) <= 1)


def _parse_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def facts_of(entity: Entity, values: dict[str, Any]) -> Facts:
    return _facts(entity.data or {}, entity.region_code or "", values)


def _facts(data: dict[str, Any], region: str, values: dict[str, Any]) -> Facts:
    name = next((str(v) for v in (answer(values, f) for f in NAME_FIELDS) if v), "")
    return Facts(name=name, id_number=str(answer(values, "id_number") or "").strip().upper(),
                 birth=_parse_date(data.get("birth_date") or answer(values, "birth_date") or ""),
                 township=region[:9] if len(region) >= 9 else "", province=region[:2])


def reasons_for(new: Facts, other: Facts) -> list[str]:
    reasons = []
    if new.id_number and new.id_number == other.id_number:
        reasons.append("id_number")
    same_name = bool(new.name) and _norm_name(new.name) == _norm_name(other.name)
    if same_name and new.birth is not None and new.birth == other.birth:
        reasons.append("name_birth")
    elif (new.birth and other.birth and abs((new.birth - other.birth).days) <= 31 and new.township
          and new.township == other.township and similar_names(new.name, other.name)):
        reasons.append("similar_name")
    return reasons


def check_keys(data: dict[str, Any], region: str | None, answers: dict[str, Any]) -> list[str]:
    """Names two new children share whenever a reason of `reasons_for` could hold between them: the province and
    one of two consecutive 32-day windows of the birth date (a birth date within 31 days of another's lies in
    the same window or the next, so two such children share a window), the province and the ID number. Two
    plain registrations of one list that could be duplicates of each other lock a shared name
    (app/services/children/lean.py) and so take turns: the second one's check sees the first child."""
    new = _facts(data, region or "", answers)
    if not new.province:
        return []
    keys = []
    if new.birth is not None:
        window = new.birth.toordinal() // 32
        keys += [f"born:{new.province}:{window}", f"born:{new.province}:{window + 1}"]
    if new.id_number:
        keys.append(f"id:{new.province}:{new.id_number}")
    return keys


_PREPARED: dict[int, Prepared] = {}


def _lean(event: events.ChildChanged, conn: Any) -> events.Writer | None:
    """on_child_changed on the lean path: the lookups run before the child is written (the new child is not among
    them either way); a likely duplicate — rare — is left to the full handler, which flags it."""
    if not event.created:
        return events.nothing
    new = facts_of(event.entity, event.answers if event.answers is not None else (event.version.data or {}))
    if not new.province:
        return events.nothing

    def run(statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        prepared = _PREPARED.get(id(statement))
        if prepared is None:
            prepared = _PREPARED[id(statement)] = Prepared(statement)
        return prepared.rows(conn, params)

    found = candidates(run, lookups(conn.dialect.name), event.entity.dataset_id, 0, new)
    return None if any(reasons_for(new, other) for _, other in found) else events.nothing


@events.lean(_lean)
@events.only_when(lambda event: event.created)
def on_child_changed(event: events.ChildChanged) -> None:
    """After-effect of a submission that changed a child (app/services/effects.py): a new child is checked."""
    if event.created:
        check_new_child(event.session, event.entity, event.version, event.answers)


def check_new_child(session: Session, entity: Entity, sv: SubmissionVersion,
                    answers: dict[str, Any] | None = None) -> list[DuplicateCandidate]:
    """Flag likely duplicates of a child just registered (inside the submission's transaction); `answers`:
    those of the child's own block when the record registered several children."""
    new = facts_of(entity, answers if answers is not None else (sv.data or {}))
    if not new.province:
        return []
    flagged = []
    for other_id, facts in _candidates(session, entity, new):
        reasons = reasons_for(new, facts)
        if reasons:
            other = session.get(Entity, other_id)
            if other is not None:
                flagged.append(_flag(session, entity, other, reasons))
    return flagged


# The birth date as the expression indexes of migration 0026 hold it (literally: an index on an expression serves
# only a query that writes the same expression, not one with the JSON key as a bound parameter).
_BIRTH_DATE = {"postgresql": literal_column("(entity.data ->> 'birth_date')"),
               "sqlite": literal_column("json_extract(entity.data, '$.birth_date')")}


@dataclass(frozen=True)
class Lookups:
    """The duplicate check's statements for one dialect, built once (building costs more than running them):
    `same_day`, `township` and `one` give (id, region code, birth date, full name, ID number) rows of the list's
    children; `same_id` the ids of the children with an ID number. Parameters: `ds` (the list), `self` (the new
    child's id, excluded; 0 before it exists), `province` (a LIKE prefix, escaped by `like_prefix`), `lo`/`hi`
    (birth dates), `township` (a LIKE prefix), `other` (an id), `idn` (an ID number)."""

    same_day: Any
    township: Any
    same_id: Any
    one: Any


_LOOKUPS: dict[str, Lookups] = {}


def lookups(dialect: str) -> Lookups:
    found = _LOOKUPS.get(dialect)
    if found is None:
        birth = _BIRTH_DATE[dialect]
        # The columns the facts need, not the children's documents (dozens of candidates per check at 300,000).
        base = (select(Entity.id, Entity.region_code, birth, ChildDirectory.full_name, ChildDirectory.id_number)
                .outerjoin(ChildDirectory, ChildDirectory.entity_id == Entity.id)
                .where(Entity.dataset_id == bindparam("ds"), Entity.id != bindparam("self"),
                       Entity.deleted_at.is_(None), Entity.region_code.like(bindparam("province"), escape="/")))
        born = and_(birth >= bindparam("lo"), birth <= bindparam("hi"))
        found = _LOOKUPS[dialect] = Lookups(
            same_day=base.where(born).limit(MAX_CANDIDATES),
            township=base.where(born, Entity.region_code.like(bindparam("township"), escape="/"))
            .limit(MAX_CANDIDATES),
            same_id=select(ChildDirectory.entity_id).where(ChildDirectory.id_number == bindparam("idn"))
            .limit(MAX_CANDIDATES),
            one=base.where(Entity.id == bindparam("other")))
    return found


def like_prefix(value: str) -> str:
    """A LIKE pattern for the values starting with `value` (escape character '/'), as startswith(autoescape)."""
    return value.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


Run = Callable[[Any, dict[str, Any]], Iterable[Sequence[Any]]]


def candidates(run: Run, looks: Lookups, dataset_id: int, self_id: int, new: Facts) -> list[tuple[int, Facts]]:
    """The children a reason of `reasons_for` could hold for — the province's children born the same day, the
    township's born within a month, those with the same ID number — each with the facts of its registration as
    the child directory keeps them (app/services/children/directory.py): indexed lookups (ix_entity_birth_date,
    ix_child_directory_id_number), the registrations themselves not read. `run(statement, parameters)` runs one
    of `looks`' statements (on a session, or on a driver connection: app/services/children/lean.py)."""
    common = {"ds": dataset_id, "self": self_id, "province": like_prefix(new.province)}
    found: dict[int, tuple[int, Facts]] = {}

    def add(rows: Iterable[Sequence[Any]]) -> None:
        for other_id, region_code, born, full_name, id_number in rows:
            region = region_code or ""
            found[other_id] = (other_id, Facts(
                name=full_name or "", id_number=(id_number or "").strip().upper(), birth=_parse_date(born or ""),
                township=region[:9] if len(region) >= 9 else "", province=region[:2]))

    if new.birth is not None:
        day = new.birth.isoformat()
        # `name_birth` needs the same birth date (anywhere in the province); `similar_name` a birth date within a
        # month in the same township: two narrow lookups, not every child born within a month in the province
        # (hundreds once the care file holds every child of Tibet, each compared in Python).
        add(run(looks.same_day, common | {"lo": day, "hi": day + "~"}))
        if new.township:
            lo, hi = (new.birth - timedelta(days=31)).isoformat(), (new.birth + timedelta(days=31)).isoformat()
            add(run(looks.township, common | {"lo": lo, "hi": hi + "~", "township": like_prefix(new.township)}))
    if new.id_number:
        # The ID number's index first (a planner may otherwise walk the list's children to join them).
        for (other,) in list(run(looks.same_id, {"idn": new.id_number[:40]})):
            add(run(looks.one, common | {"other": other}))
    return list(found.values())


def _candidates(session: Session, entity: Entity, new: Facts) -> list[tuple[int, Facts]]:
    looks = lookups(session.get_bind().dialect.name)
    return candidates(lambda statement, params: session.execute(statement, params), looks, entity.dataset_id,
                      entity.id, new)


def _flag(session: Session, a: Entity, b: Entity, reasons: list[str]) -> DuplicateCandidate:
    lo, hi = sorted((a.id, b.id))
    pair = session.scalar(select(DuplicateCandidate).where(DuplicateCandidate.entity_a_id == lo,
                                                           DuplicateCandidate.entity_b_id == hi))
    if pair is None:
        pair = DuplicateCandidate(dataset_id=a.dataset_id, entity_a_id=lo, entity_b_id=hi, reasons=reasons,
                                  status="open")
        session.add(pair)
    elif pair.status == "open":
        pair.reasons = sorted(set(pair.reasons or []) | set(reasons))
    session.flush()
    return pair


# ---------------------------------------------------------------- listing and decisions


def _pair_of(session: Session, a: Entity, b: Entity) -> DuplicateCandidate | None:
    lo, hi = sorted((a.id, b.id))
    return session.scalar(select(DuplicateCandidate).where(DuplicateCandidate.entity_a_id == lo,
                                                           DuplicateCandidate.entity_b_id == hi))


def mark_distinct(session: Session, project_id: int, user: User, uid: str, other_uid: str, ip: str = "") -> None:
    """"Not the same child": the pair is never flagged again."""
    access.require(user, "case.decide")
    first, second = sorted((uid.strip().lower(), other_uid.strip().lower()))  # one order (docs/architecture.md)
    locked = {first: locked_child(session, project_id, user, first)}
    locked[second] = locked_child(session, project_id, user, second)
    a, b = locked[uid.strip().lower()], locked[other_uid.strip().lower()]
    if a.id == b.id:
        raise problems.CHILD_COMPARED_WITH_ITSELF()
    pair = _pair_of(session, a, b) or _flag(session, a, b, ["manual"])
    pair.status, pair.decided_at, pair.decided_by = "distinct", utcnow(), user.id
    audit.record(session, user, "child.distinct", target=f"child:{a.uuid}", ip=ip, other=b.uuid)


def merge(session: Session, project_id: int, user: User, uid: str, into: str, note: str = "",
          ip: str = "") -> Entity:
    """Merge child `uid` into child `into` (the survivor).

    Every record of the merged child (registrations, identifications, assessments, referrals,
    follow-ups) is re-linked to the survivor; the merged child's entity versions are kept and
    shown on the survivor's timeline; properties the survivor lacks are taken over; the merged
    child is soft-deleted, so it leaves phones (the integrity check reports it deleted).
    """
    access.require(user, "case.decide")
    if not into:
        raise problems.MERGE_SURVIVOR_MISSING()
    first, second = sorted((uid.strip().lower(), into.strip().lower()))  # lock in one order: no deadlock
    locked = {first: locked_child(session, project_id, user, first)}
    locked[second] = locked_child(session, project_id, user, second)
    gone, survivor = locked[uid.strip().lower()], locked[into.strip().lower()]
    if gone.id == survivor.id:
        raise problems.CHILD_MERGED_INTO_ITSELF()
    pair = _pair_of(session, gone, survivor)
    if pair is not None and pair.status == "distinct":
        raise problems.MARKED_DISTINCT()
    result = session.execute(update(Submission).where(Submission.entity_uuid == gone.uuid)
                             .values(entity_uuid=survivor.uuid).execution_options(synchronize_session=False))
    moved = getattr(result, "rowcount", 0)
    session.execute(update(Entity).where(Entity.merged_into == gone.uuid).values(merged_into=survivor.uuid)
                    .execution_options(synchronize_session=False))
    taken = {k: v for k, v in (gone.data or {}).items() if v not in (None, "") and (survivor.data or {}).get(k)
             in (None, "")}
    server_version(session, survivor, taken, action="merge", user=user,
                   note=f"merged {gone.uuid}" + (f": {note.strip()[:400]}" if note.strip() else ""))
    follow_child(session, survivor)
    gone.deleted_at = utcnow()
    gone.merged_into = survivor.uuid
    bump_revision(session, gone)
    if pair is None:
        pair = _flag(session, gone, survivor, ["manual"])
    pair.status, pair.decided_at, pair.decided_by = "merged", utcnow(), user.id
    _repoint_open_pairs(session, gone, survivor)
    audit.record(session, user, "child.merge", target=f"child:{survivor.uuid}", ip=ip, merged=gone.uuid,
                 records=int(moved or 0))
    session.flush()
    return survivor


def _repoint_open_pairs(session: Session, gone: Entity, survivor: Entity) -> None:
    """Open pairs of the merged child now concern the survivor (unless already decided for it)."""
    pairs = session.scalars(select(DuplicateCandidate).where(
        DuplicateCandidate.status == "open",
        or_(DuplicateCandidate.entity_a_id == gone.id, DuplicateCandidate.entity_b_id == gone.id))).all()
    for pair in pairs:
        other_id = pair.entity_b_id if pair.entity_a_id == gone.id else pair.entity_a_id
        lo, hi = sorted((other_id, survivor.id))
        reasons = list(pair.reasons or [])
        session.delete(pair)
        session.flush()
        if other_id == survivor.id:
            continue
        exists = session.scalar(select(DuplicateCandidate.id).where(
            and_(DuplicateCandidate.entity_a_id == lo, DuplicateCandidate.entity_b_id == hi)))
        if exists is None:
            session.add(DuplicateCandidate(dataset_id=survivor.dataset_id, entity_a_id=lo, entity_b_id=hi,
                                           reasons=reasons, status="open"))
    session.flush()


def merged_children(session: Session, survivor: Entity) -> list[Entity]:
    return list(session.scalars(select(Entity).where(Entity.dataset_id == survivor.dataset_id,
                                                     Entity.merged_into == survivor.uuid).order_by(Entity.id)))
