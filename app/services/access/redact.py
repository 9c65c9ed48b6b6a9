"""Who sees identifying details, and the one place answers are masked for a user.

Sensitive fields (`sees_sensitive`, `Redactor`): questions marked `bind::carefile:sensitive`, and
calculations derived from them (forms.sensitivity), are shown to admins and coordinators, and to
managers an admin has granted it; everyone else gets `MASK` in their place, no file of a sensitive
question, and a pseudonymous child label such as `儿童 A3F2` where the label is built from
sensitive data. Callers audit every unmasked view.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Form, FormVersion, User
from app.services import audit
from app.services.access.policy import COORDINATORS
from app.services.schemas import schema_of
from forms import FormSchema
from forms.sensitivity import (
    instance_name_is_sensitive,
    label_is_sensitive,
    mask_xml,
    sensitive_paths,
    sensitive_properties,
)
from forms.submission import without_sent_text

MASK = "***"

SENSITIVE_ROLES = COORDINATORS


def sees_sensitive(user: User) -> bool:
    """Admins and coordinators see identifying details; a manager only when an admin granted it."""
    if not user.active:
        return False
    return user.role in SENSITIVE_ROLES or (user.role == "manager" and bool(getattr(user, "sees_sensitive", False)))


_LISTS_CACHE: dict[tuple[str, ...], frozenset[str]] = {}


def sensitive_label_lists(session: Session, project_id: int) -> frozenset[str]:
    """Entity lists whose labels are built from sensitive data by a form that creates them."""
    versions = list(session.scalars(
        select(FormVersion).join(Form, Form.current_version_id == FormVersion.id).where(Form.project_id == project_id)))
    key = tuple(sorted(v.sha256 for v in versions))  # by content: ids repeat across databases
    hit = _LISTS_CACHE.get(key)
    if hit is not None:
        return hit
    schemas = [schema_of(v) for v in versions]
    lists: set[str] = set()
    for _ in range(2):  # a label may be built from another list's label
        for s in schemas:
            if s.entity is not None and s.entity.create and label_is_sensitive(s, lists):
                lists.add(s.entity.dataset)
    result = frozenset(lists)
    if len(_LISTS_CACHE) > 256:
        _LISTS_CACHE.clear()
    _LISTS_CACHE[key] = result
    return result


class Redactor:
    """Masks one user's view of records: built once per request, applied to every record."""

    def __init__(self, session: Session, user: User, project_id: int) -> None:
        self.user = user
        self.show = sees_sensitive(user)
        self.lists = sensitive_label_lists(session, project_id) if not self.show else frozenset()
        self._session = session
        self._project_id = project_id
        self._props: frozenset[str] | None = None

    # -- submissions
    def paths(self, schema: FormSchema) -> frozenset[str]:
        return frozenset() if self.show else sensitive_paths(schema, self.lists)

    def values(self, schema: FormSchema, data: dict[str, Any], repeat: str | None = None) -> dict[str, Any]:
        """A record's values (keys relative to the root, or to the repeat) with sensitive ones masked, without
        the select-multiples' texts as submitted (kept for CSV exports only: forms.submission.SENT_TEXT)."""
        if data:
            data = without_sent_text(data)
        if self.show or not data:
            return data
        paths = self.paths(schema)
        if not paths:
            return data
        base = (repeat + "/") if repeat else f"/{schema.root}/"
        return {k: (MASK if (base + k) in paths and v not in (None, "") else v) for k, v in data.items()}

    def withheld_files(self, schema: FormSchema, data: dict[str, Any], repeats: Iterable[Any] = ()) -> set[str]:
        """File names answered to sensitive questions (photos, signatures): never sent to this user."""
        if self.show:
            return set()
        files = self.paths(schema) & {f.path for f in schema.fields if f.type == "binary"}
        if not files:
            return set()
        root = f"/{schema.root}/"
        names = {str(v) for k, v in data.items() if (root + k) in files and v}
        for r in repeats:
            names |= {str(v) for k, v in (r.data or {}).items() if f"{r.repeat}/{k}" in files and v}
        return names

    def instance_name(self, schema: FormSchema, name: str | None) -> str | None:
        """A record's instance name (e.g. 建档-绕赛社区-扎**), masked when the form builds it from sensitive data."""
        if self.show or not name or not instance_name_is_sensitive(schema, self.lists):
            return name
        return MASK

    def xml(self, schema: FormSchema, xml: bytes) -> bytes:
        """The raw submission XML with the text of sensitive nodes masked."""
        if self.show:
            return xml
        paths = self.paths(schema)
        if not paths:
            return xml
        return mask_xml(xml, paths, MASK)

    # -- children
    def child_label(self, dataset: str, uuid: str, label: str) -> str:
        if self.show or dataset not in self.lists:
            return label
        return pseudonym(uuid)

    def entity_properties(self, dataset: str, data: dict[str, Any]) -> dict[str, Any]:
        if self.show or not data:
            return data
        props = self._sensitive_props(dataset)
        return {k: (MASK if k in props and v not in (None, "") else v) for k, v in data.items()}

    def _sensitive_props(self, dataset: str) -> frozenset[str]:
        if self._props is None:
            versions = self._session.scalars(
                select(FormVersion).join(Form, Form.current_version_id == FormVersion.id)
                .where(Form.project_id == self._project_id))
            props: set[str] = set()
            for v in versions:
                s = schema_of(v)
                if s.entity is not None and s.entity.dataset == dataset:
                    props |= sensitive_properties(s, self.lists)
            self._props = frozenset(props)
        return self._props


def audit_unmasked(db: Any, user: User, red: Redactor, action: str, target: str, ip: str = "",
                   **details: Any) -> None:
    """Record a bulk read (OData, entity lists) that showed identifying details unmasked."""
    if not red.show:
        return
    with db.write() as session:
        audit.record(session, user, action, target=target, ip=ip, unmasked=True, **details)


def pseudonym(uuid: str) -> str:
    """A stable, non-identifying label for a child: 儿童 + the first four hex digits of its id."""
    return "儿童 " + uuid.replace("-", "")[:4].upper()
