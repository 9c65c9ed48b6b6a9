"""Finding a child and telling two children apart: the directory of what identifies each child.

The entity list that syncs to phones carries only a de-identified label (扎*（男，2012-10，蔡公堂村委会）).
The child's full name, guardian and ID number are sensitive answers of the registration record. This
module keeps one `child_directory` row per child with those values and a `search_text` — name, toneless
pinyin (扎西次仁 → zhaxiciren), pinyin initials (zxcr), ID number, guardian and the guardian's pinyin,
lower-case, joined by " | " — so a coordinator finds 扎西次仁 by any of them with one LIKE.

Who reads it: only users entitled to identifying details (app.services.access.sees_sensitive), through
the read models of app.services.children.childfile; phones and everyone else keep the de-identified label.

When it changes (after-effects, app/services/effects.py): a registration creating a child
(`ChildChanged`), and an edit of the registration record (`RecordEdited`: correcting a child's name).
Children registered before the table existed are filled by `fill_missing` (run at start-up by
app.services.ops.setup.init_schema).
"""
from __future__ import annotations

import unicodedata
from typing import Any

from pypinyin import Style, lazy_pinyin
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from app.models import ChildDirectory, Dataset, Entity, EntityVersion, Submission, SubmissionVersion, utcnow
from app.services import events
from app.services.answers import answer
from app.services.children.store import CHILDREN, answers_for

NAME_FIELDS = ("child_name", "full_name", "name")
GUARDIAN_FIELDS = ("guardian_name",)
ID_FIELDS = ("id_number",)
SEPARATOR = " | "
FILL_BATCH = 500


def norm_name(name: str) -> str:
    """A name without spaces, middle dots and the like, lower-case (扎西·次仁 → 扎西次仁)."""
    name = unicodedata.normalize("NFKC", name or "")
    return "".join(ch for ch in name if not ch.isspace() and ch not in "·•.-_").lower()


def pinyin_key(name: str) -> str:
    """Toneless pinyin of a name (Latin letters kept, lower-case): 扎西, 扎喜 and 札西 all give 'zhaxi'."""
    return "".join(lazy_pinyin(norm_name(name))).lower()


def initials(name: str) -> str:
    """The pinyin initials of a name: 扎西次仁 → zxcr."""
    return "".join(p[:1] for p in lazy_pinyin(norm_name(name), style=Style.FIRST_LETTER)).lower()


def search_key(query: str) -> str:
    """A typed search as it is compared with search_text: normalised like the stored values."""
    return norm_name(query)


def _first(values: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = answer(values, name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def facts(values: dict[str, Any]) -> tuple[str | None, str | None, str | None, str]:
    """(full name, guardian, ID number, search text) of a registration's answers."""
    name = _first(values, NAME_FIELDS)
    guardian = _first(values, GUARDIAN_FIELDS)
    id_number = _first(values, ID_FIELDS)
    id_number = id_number.upper()[:40] if id_number else None
    parts = []
    if name:
        syllables = lazy_pinyin(norm_name(name))  # once for both: the initials are the syllables' first letters
        parts += [norm_name(name), "".join(syllables).lower(), "".join(p[:1] for p in syllables).lower()]
    if id_number:
        parts.append(id_number.lower())
    if guardian:
        parts += [norm_name(guardian), pinyin_key(guardian)]
    return name, guardian, id_number, SEPARATOR.join(p for p in parts if p)


def _registration(session: Session, entity: Entity) -> tuple[int, dict[str, Any]] | None:
    """The submission that created the child and its current answers."""
    row = session.execute(
        select(Submission.id, SubmissionVersion)
        .join(EntityVersion, EntityVersion.submission_id == Submission.id)
        .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
        .where(EntityVersion.entity_id == entity.id, EntityVersion.version == 1)).first()
    return (row[0], answers_for(session, entity, row[1])) if row is not None else None


def refresh(session: Session, entity: Entity) -> ChildDirectory | None:
    """Write the child's directory row from its registration record (None: no registration on the server)."""
    found = _registration(session, entity)
    if found is None:
        return None
    return write(session, entity, *found)


def write(session: Session, entity: Entity, submission_id: int, values: dict[str, Any],
          new: bool = False) -> ChildDirectory:
    """The child's directory row from its registration record's id and answers (`new`: a child created in this
    transaction, who has no row yet)."""
    name, guardian, id_number, text = facts(values)
    row = None if new else session.get(ChildDirectory, entity.id)
    if row is None:
        row = ChildDirectory(entity_id=entity.id)
        session.add(row)
    row.full_name, row.guardian_name, row.id_number, row.search_text = name, guardian, id_number, text
    row.submission_id, row.updated_at = submission_id, utcnow()
    session.flush()
    return row


def _lean(event: events.ChildChanged, conn: Any) -> events.Writer:
    """on_child_changed on the lean path: the new child's row, written with the change."""
    if not event.created or event.dataset != CHILDREN:
        return events.nothing
    answers = event.answers if event.answers is not None else dict(event.version.data or {})
    name, guardian, id_number, text = facts(answers)

    def write(rows: Any) -> None:
        rows.insert(ChildDirectory.__table__, {
            "entity_id": event.entity.id, "full_name": name, "guardian_name": guardian, "id_number": id_number,
            "search_text": text, "submission_id": event.version.submission_id, "updated_at": utcnow()})
    return write


@events.lean(_lean)
@events.only_when(lambda event: event.created)
def on_child_changed(event: events.ChildChanged) -> None:
    """After-effect: a registration created a child of the care file."""
    if event.created:
        ds = event.session.get(Dataset, event.entity.dataset_id)
        if ds is not None and ds.name == CHILDREN:
            # The record that created the child is its registration, and the event carries its answers in the
            # child's scope (what refresh() would read back: the current version's, or its repeat instance's).
            answers = event.answers if event.answers is not None else dict(event.version.data or {})
            write(event.session, event.entity, event.version.submission_id, answers, new=True)


def on_record_edited(event: events.RecordEdited) -> None:
    """After-effect: an edit became the current version of a record; if it is a child's registration,
    the child's name, guardian or ID number may have been corrected."""
    session = event.session
    entity = session.scalar(select(Entity).join(EntityVersion, EntityVersion.entity_id == Entity.id).where(
        EntityVersion.submission_id == event.submission_id, EntityVersion.version == 1))
    if entity is not None:
        refresh(session, entity)


def fill_missing(session: Session, limit: int = FILL_BATCH) -> int:
    """Directory rows for children registered before the directory existed (a batch; how many were made)."""
    missing = session.scalars(
        select(Entity).join(Dataset, Dataset.id == Entity.dataset_id)
        .outerjoin(ChildDirectory, ChildDirectory.entity_id == Entity.id)
        .where(Dataset.name == CHILDREN, ChildDirectory.entity_id.is_(None), Entity.anonymised_at.is_(None),
               and_(Entity.deleted_at.is_(None)))
        .order_by(Entity.id).limit(limit)).all()
    made = 0
    for entity in missing:
        if refresh(session, entity) is None:  # no registration here (made through the API): an empty row
            session.add(ChildDirectory(entity_id=entity.id, search_text="", updated_at=utcnow()))
        made += 1
    session.flush()
    return made


__all__ = ["facts", "fill_missing", "initials", "norm_name", "on_child_changed", "on_record_edited", "pinyin_key",
           "refresh", "search_key"]
