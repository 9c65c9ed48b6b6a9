"""The access policy: who may do what, to which records, and who sees identifying details.

Every read and write path asks this module; the HTTP layer never filters data itself.

Roles (`require`/`can`): what a role may do at all — read care files, review, export, manage
forms, collectors or users, decide held changes.

Regions (`region_filter`, `covers`, `submission_filter`, `sees_submission`): an admin is
unscoped; every other role sees only the records inside its region codes (a code covers every
code that starts with it), and a user with no regions sees nothing — province-wide access is
the explicit code `54`. Records outside the caller's scope answer 404, never 403, so ids cannot
be probed. Users grant regions only inside their own scope (`check_grant`).

Writes from phones (`may_write_region`): a submission is never refused for its scope (Collect
would retry forever and the data would be lost), but its effects outside the submitter's
regions (an entity created or updated there, an edit of a record there) are held for review
(app.services.held) instead of being applied.

Sensitive fields (`sees_sensitive`, `redact`, `child_label`, `withheld_files`): questions
marked `bind::carefile:sensitive`, and calculations derived from them (forms.sensitivity), are
shown to admins and coordinators, and to managers an admin has granted it; everyone else gets
`MASK` in their place, no file of a sensitive question, and a pseudonymous child label such as
`儿童 A3F2` where the label is built from sensitive data. Callers audit every unmasked view.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from app.errors import Problem
from app.models import Dataset, Entity, Form, FormVersion, Submission, User
from forms import FormSchema
from forms.sensitivity import label_is_sensitive, mask_xml, sensitive_paths, sensitive_properties

MASK = "***"
CHILDREN = "children"

ADMIN = ("admin",)
COORDINATORS = ("admin", "coordinator")
READERS = ("admin", "coordinator", "manager")

# verb → roles allowed; the single table of what a role may do.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "care.read": READERS,          # submissions, children, dashboards, OData, attachments
    "submission.review": READERS,  # review state and comments
    "export": READERS,
    "form.manage": COORDINATORS,   # upload, publish, media, states
    "collector.manage": COORDINATORS,
    "held.decide": COORDINATORS,   # apply or reject held changes
    "user.manage": ADMIN,
    "audit.read": ADMIN,
}
_DENIED = {
    "care.read": "Your account may not read care files. Ask an administrator.",
    "form.manage": "Only coordinators and administrators manage forms.",
    "collector.manage": "Only coordinators and administrators manage collectors.",
    "held.decide": "Only coordinators and administrators decide held changes.",
    "user.manage": "Only administrators manage users.",
    "audit.read": "Only administrators read the audit log.",
}


def can(user: User, verb: str) -> bool:
    return bool(user.active) and user.role in PERMISSIONS[verb]


def require(user: User, verb: str) -> None:
    if not can(user, verb):
        raise Problem(403, "403.1", _DENIED.get(verb, "Your role may not do this. Ask an administrator."))


def require_reader(user: User) -> None:
    require(user, "care.read")


# ---------------------------------------------------------------------------------------------
# Regions


def unscoped(user: User) -> bool:
    return user.role == "admin"


def covers(user: User, code: str | None) -> bool:
    """Whether the region code lies inside the user's scope."""
    if unscoped(user):
        return True
    return code is not None and any(code.startswith(c) for c in user.region_codes)


sees_region = covers


def region_filter(user: User, column: ColumnElement[str | None]) -> ColumnElement[bool]:
    """SQL condition: the row's region code lies inside one of the user's regions."""
    if unscoped(user):
        return true()
    codes = user.region_codes
    if not codes:
        return false()
    return or_(*[column.startswith(code, autoescape=True) for code in codes])


def phone_scope(user: User) -> tuple[str, ...] | None:
    """Region codes limiting what the user's phone receives; None = everything, () = nothing."""
    return None if unscoped(user) else tuple(sorted(user.region_codes))


def may_write_region(user: User, code: str | None) -> bool:
    """Whether a submission by this user may change a record in that region without review."""
    return covers(user, code)


def check_grant(user: User, codes: Iterable[str]) -> None:
    """Users grant only within their own scope (a coordinator of 540102 cannot hand out 54)."""
    if unscoped(user):
        return
    outside = [c for c in codes if not covers(user, c)]
    if outside:
        mine = ", ".join(user.region_codes) or "none"
        raise Problem(403, "403.20", f"You may only give regions inside your own ({mine}); "
                      f"{', '.join(outside)} is outside them.", details={"regions": outside})


def may_manage_user(actor: User, target: User) -> bool:
    """An admin manages everyone; a coordinator manages collectors all of whose regions it covers
    (and collectors without regions, who see nothing until given some)."""
    if unscoped(actor):
        return True
    if actor.role != "coordinator" or target.role != "collector":
        return False
    return all(covers(actor, c) for c in target.region_codes)


def children_subquery(user: User, project_id: int) -> Any:
    """uuids of the children in the user's scope."""
    return (select(Entity.uuid).join(Dataset, Dataset.id == Entity.dataset_id)
            .where(Dataset.project_id == project_id, Dataset.name == CHILDREN,
                   region_filter(user, Entity.region_code)))


def submission_filter(user: User, project_id: int) -> Any:
    """SQL condition: the user may see the submission — its region is one of the user's, or it has no
    region of its own (an update form without region questions) and is about a child in the user's regions."""
    if unscoped(user):
        return true()
    if not user.region_codes:
        return false()
    return or_(region_filter(user, Submission.region_code),
               and_(Submission.region_code.is_(None), Submission.entity_uuid.in_(children_subquery(user, project_id))))


def sees_submission(session: Session, user: User, project_id: int, sub: Submission) -> bool:
    if covers(user, sub.region_code):
        return True
    if sub.region_code is not None or sub.entity_uuid is None:
        return False
    region = session.scalar(select(Entity.region_code).join(Dataset, Dataset.id == Entity.dataset_id).where(
        Dataset.project_id == project_id, Dataset.name == CHILDREN, Entity.uuid == sub.entity_uuid))
    return covers(user, region)


def may_edit_record(session: Session, user: User, project_id: int, sub: Submission) -> bool:
    """Whether the user's edit (deprecatedID) of this record may take effect without review: the record
    lies in the user's regions (its own region, or its child's); a record with no region at all may be
    edited by the one who sent it."""
    if unscoped(user) or sees_submission(session, user, project_id, sub):
        return True
    if sub.region_code is None and sub.entity_uuid is None:
        return sub.submitter_id == user.id
    return False


def child_filter(user: User) -> ColumnElement[bool]:
    return region_filter(user, Entity.region_code)


# ---------------------------------------------------------------------------------------------
# Sensitive fields


SENSITIVE_ROLES = COORDINATORS


def sees_sensitive(user: User) -> bool:
    """Admins and coordinators see identifying details; a manager only when an admin granted it."""
    if not user.active:
        return False
    return user.role in SENSITIVE_ROLES or (user.role == "manager" and bool(getattr(user, "sees_sensitive", False)))


_LISTS_CACHE: dict[tuple[str, ...], frozenset[str]] = {}


def sensitive_label_lists(session: Session, project_id: int) -> frozenset[str]:
    """Entity lists whose labels are built from sensitive data by a form that creates them."""
    from app.services.forms import schema_of

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
        """A record's values (keys relative to the root, or to the repeat) with sensitive ones masked."""
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
            from app.services.forms import schema_of

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
    from app.services import audit

    with db.write() as session:
        audit.record(session, user, action, target=target, ip=ip, unmasked=True, **details)


def pseudonym(uuid: str) -> str:
    """A stable, non-identifying label for a child: 儿童 + the first four hex digits of its id."""
    return "儿童 " + uuid.replace("-", "")[:4].upper()


__all__ = ["MASK", "PERMISSIONS", "Redactor", "can", "check_grant", "child_filter", "children_subquery", "covers",
           "may_manage_user", "may_write_region", "phone_scope", "pseudonym", "region_filter", "require",
           "require_reader", "sees_region", "sees_sensitive", "sees_submission", "submission_filter", "unscoped"]
