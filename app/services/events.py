"""After-effects: what follows an event is decided in one table, not by the code that announces it.

Lower floors announce what happened (`announce(ChildChanged(...))`); the handlers live in the
packages that own them and are listed in app/services/effects.py (the table, in the manner of ODK
Central's lib/worker/jobs.js), which `create_app` installs. So entity processing never imports case
work or the duplicate check, and a new after-effect is one line in the table.

Handlers run in the announcer's transaction, each in its own savepoint: a failing handler is logged
and undone, never the change that announced it — except a lost race (deadlock, serialization
failure), which aborts the whole transaction so that its caller runs it again.
"""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.db import is_retryable
from app.models import Entity, SubmissionVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildChanged:
    """A submission created or updated an entity (a child of the care file) and it was applied."""

    session: Session | None  # None: announced by the lean path (`lean_plan`), whose handlers get a connection
    entity: Entity
    version: SubmissionVersion  # the submission version that changed it
    created: bool
    # The answers in the entity block's scope: the record's, overlaid by its repeat instance's when the
    # block is one of several in a repeat (entities spec 2025.1); None: the version's own answers.
    answers: dict[str, Any] | None = None
    dataset: str | None = None  # the list's name, when the announcer has it at hand (the lean path)


@dataclass(frozen=True)
class RecordEdited:
    """An edit (deprecatedID) became the current version of a submission (app.services.submissions.ingest)."""

    session: Session
    submission_id: int
    version: SubmissionVersion


Event = ChildChanged | RecordEdited
Handler = Callable[[Any], None]
Writer = Callable[[Any], None]  # a lean handler's write, given the change's Rows (app/services/children/lean.py)

_table: dict[type, tuple[Handler, ...]] | None = None


def install(table: Mapping[type, Sequence[Handler]]) -> None:
    """Set the table of after-effects (app.services.effects.install does, from create_app)."""
    global _table
    _table = {event: tuple(handlers) for event, handlers in table.items()}


def installed() -> bool:
    return _table is not None


def only_when(applies: Callable[[Any], bool]) -> Callable[[Handler], Handler]:
    """Decorate a handler with a cheap test of the event: `announce` skips the handler, and its savepoint,
    when the test says the handler would do nothing (most visit records change no case state)."""
    def mark(handler: Handler) -> Handler:
        handler.applies = applies  # type: ignore[attr-defined]
        return handler
    return mark


def lean(prepare: Callable[[Any, Any], Writer | None]) -> Callable[[Handler], Handler]:
    """Decorate a handler with its variant for the lean path (app/services/children/lean.py: an entity change on a
    driver connection, without a Session). `prepare(event, conn)` runs before anything is written and only reads;
    it returns what to write with the change (a callable given the change's `Rows`, app/services/children/lean.py:
    `rows.insert(table, values)`; the event's entity and version then carry their ids), or None when this event
    needs the full handler."""
    def mark(handler: Handler) -> Handler:
        handler.lean = prepare  # type: ignore[attr-defined]
        return handler
    return mark


def nothing(rows: Any) -> None:
    """The writer of a lean handler with nothing to write."""


def lean_plan(event: Event, conn: Any) -> list[Writer] | None:
    """The lean path's `announce`, in two steps: the writers of the event's handlers (in the table's order, but
    those whose `only_when` test says they have nothing to do), or None when a handler that would act has no lean
    variant, or its variant says this event needs it — the announcer then takes its ORM path, which runs
    `announce`. Nothing is written here; the caller runs the writers after the change (a writer that fails fails
    the caller's transaction, which then takes the ORM path: nothing is lost)."""
    if _table is None:
        raise RuntimeError("the after-effects table is not installed: call app.services.effects.install() "
                           "(create_app does) before changing records")
    writers = []
    for handler in _table.get(type(event), ()):
        applies = getattr(handler, "applies", None)
        if applies is not None and not applies(event):
            continue
        prepare = getattr(handler, "lean", None)
        writer = prepare(event, conn) if prepare is not None else None
        if writer is None:
            return None
        writers.append(writer)
    return writers


def announce(event: Event) -> None:
    """Run the handlers of the event, in the table's order, each in a savepoint of the event's session
    (but those whose `only_when` test says they have nothing to do)."""
    if _table is None:
        raise RuntimeError("the after-effects table is not installed: call app.services.effects.install() "
                           "(create_app does) before changing records")
    for handler in _table.get(type(event), ()):
        applies = getattr(handler, "applies", None)
        if applies is not None and not applies(event):
            continue
        assert event.session is not None, "an event of the lean path is announced by lean_plan"
        try:
            with event.session.begin_nested():
                handler(event)
        except Exception as err:
            if is_retryable(err):
                raise
            # Class and code location only: an exception's text can hold SQL and a child's answers.
            log.error("after-effect %s of %s failed: %s at %s", getattr(handler, "__qualname__", handler),
                      type(event).__name__, type(err).__name__, where(err))


def where(err: BaseException) -> str:
    """file:line of the innermost frame of an exception (code location only, no values)."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
