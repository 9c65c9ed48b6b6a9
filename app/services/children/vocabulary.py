"""Words for the codes a child's file stores: which question a property comes from, and its choices' labels.

An entity property holds what a form saved to it: a choice name (`gender` = `male`, `category` =
`orphan left_behind`, `flag_reidentify` = `no`) or a calculation. The forms that save to the list say
what the names mean — the question's label and its choices' labels in each of the form's languages —
so pages show 男 / 孤儿、农村留守儿童 / 否 instead of the codes. Labels are kept as the forms give them
(`{"中文 (zh)": "男", "English (en)": "Male"}`); the page picks its language (app.i18n.form_label).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Form, FormVersion
from app.services.children.store import CHILDREN
from app.services.schemas import schema_of

Labels = dict[str, str]


@dataclass(frozen=True)
class Vocabulary:
    """Property → the labels of the question saved to it; property → choice name → the choice's labels."""

    questions: dict[str, Labels] = field(default_factory=dict)
    choices: dict[str, dict[str, Labels]] = field(default_factory=dict)
    multiple: frozenset[str] = frozenset()  # properties saved from select_multiple questions

    def question(self, prop: str) -> Labels | None:
        return self.questions.get(prop)

    def value(self, prop: str, value: object) -> list[Labels] | None:
        """The labels of a stored value: one per chosen option (select_multiple values are space-separated);
        None when the property has no choices or a name is not among them."""
        table = self.choices.get(prop)
        if not table or value is None or value == "":
            return None
        names = str(value).split() if prop in self.multiple else [str(value)]
        found = [table.get(n) for n in names]
        if any(f is None for f in found):
            return None
        return [f for f in found if f is not None]


_CACHE: dict[tuple[str, ...], Vocabulary] = {}
_LOCK = threading.Lock()


def vocabulary(session: Session, project_id: int, dataset: str = CHILDREN) -> Vocabulary:
    """The words of the list's properties, from the current versions of the forms that save to it."""
    versions = list(session.scalars(
        select(FormVersion).join(Form, Form.current_version_id == FormVersion.id)
        .where(Form.project_id == project_id).order_by(Form.xml_form_id)))
    key = (dataset, *sorted(v.sha256 for v in versions))  # by content: ids repeat across databases
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    questions: dict[str, Labels] = {}
    choices: dict[str, dict[str, Labels]] = {}
    multiple: set[str] = set()
    for fv in versions:
        schema = schema_of(fv)
        if schema.entity is None or schema.entity.dataset != dataset:
            continue
        for path, prop in schema.entity.properties.items():
            f = schema.field(path)
            if f is None:
                continue
            if f.labels and prop not in questions:
                questions[prop] = dict(f.labels)
            if f.choices:
                table = choices.setdefault(prop, {})
                for c in f.choices:
                    if c.labels:
                        table.setdefault(c.value, dict(c.labels))
                if f.type == "select":
                    multiple.add(prop)
    words = Vocabulary(questions, choices, frozenset(multiple))
    with _LOCK:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = words
    return words


__all__ = ["Labels", "Vocabulary", "vocabulary"]
