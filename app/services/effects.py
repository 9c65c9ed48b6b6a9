"""The table of after-effects: which handlers follow which event (as ODK Central's lib/worker/jobs.js).

Lower floors announce events (app/services/events.py) without knowing who listens; this table, on
the top floor, says who does, in order. `create_app` installs it; code that changes records without
it installed fails loudly instead of silently skipping case work.

    ChildChanged   a submission created or updated a child (app.services.children.entities)
      → casework.on_child_changed    a form that closes the case closes it; a closed case stays closed
      → directory.on_child_changed   a new child's name, guardian, ID number become searchable
      → duplicates.on_child_changed  a new child is compared with the province's children
    RecordEdited   an edit became a record's current version (app.services.submissions.ingest)
      → directory.on_record_edited   a corrected registration corrects the child's directory row
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.services import events
from app.services.children import casework, directory, duplicates

TABLE: dict[type, Sequence[Callable[[Any], None]]] = {
    events.ChildChanged: (casework.on_child_changed, directory.on_child_changed, duplicates.on_child_changed),
    events.RecordEdited: (directory.on_record_edited,),
}


def install() -> None:
    events.install(TABLE)
