"""The table of after-effects: which handlers follow which event (as ODK Central's lib/worker/jobs.js).

Lower floors announce events (app/services/events.py) without knowing who listens; this table, on
the top floor, says who does, in order. `create_app` installs it; code that changes records without
it installed fails loudly instead of silently skipping case work.

    ChildChanged   a submission created or updated a child (app.services.children.entities)
      → casework.on_child_changed    a form that closes the case closes it; a closed case stays closed
      → duplicates.on_child_changed  a new child is compared with the province's children
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.services import events
from app.services.children import casework, duplicates

TABLE: dict[type, Sequence[Callable[[Any], None]]] = {
    events.ChildChanged: (casework.on_child_changed, duplicates.on_child_changed),
}


def install() -> None:
    events.install(TABLE)
