"""The access policy: who may do what, and to which records (roles, regions, forms).

Every read and write path asks this package; the HTTP layer never filters data itself.

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
(app.services.children.held) instead of being applied.

Forms (`may_fill`, `may_enter_on_web`): which forms a user may download and submit from a
phone, and fill in the browser. Changing a form (`may_change_form`, `require_form_change`: publishing,
drafts, attachments, state, encryption) is for administrators and for coordinators whose regions
cover every collector the form reaches; a form that reaches collectors by default (one without
assignments, or in a project where some collector has none: they receive every form, now and when
added) is project-wide and needs a coordinator with a province's scope.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from app import problems
from app.models import Dataset, Entity, Form, FormAssignment, Submission, User
from app.services import regions

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
    "case.decide": COORDINATORS,   # merge children or keep them apart
    "trash.manage": COORDINATORS,  # delete entities and submissions, restore them from the trash
    "user.manage": ADMIN,
    "audit.read": ADMIN,
}
_DENIED = {
    "care.read": "Your account may not read care files. Ask an administrator.",
    "form.manage": "Only coordinators and administrators manage forms.",
    "collector.manage": "Only coordinators and administrators manage collectors.",
    "held.decide": "Only coordinators and administrators decide held changes.",
    "case.decide": "Only a coordinator may do this. Ask your project coordinator.",
    "trash.manage": "Only coordinators and administrators delete or restore records. Ask your project coordinator.",
    "user.manage": "Only administrators manage users.",
    "audit.read": "Only administrators read the audit log.",
}


def can(user: User, verb: str) -> bool:
    return bool(user.active) and user.role in PERMISSIONS[verb]


def require(user: User, verb: str) -> None:
    if not can(user, verb):
        raise problems.ROLE_MAY_NOT(detail=_DENIED.get(verb, "Your role may not do this. Ask an administrator."))


def require_reader(user: User) -> None:
    require(user, "care.read")


# ---------------------------------------------------------------------------------------------
# Regions


def unscoped(user: User) -> bool:
    return user.role == "admin"


def covers(user: User, code: str | None) -> bool:
    """Whether the region code lies inside the user's scope."""
    return unscoped(user) or regions.covers(user.region_codes, code)


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
        raise problems.REGIONS_OUTSIDE_OWN(mine=mine, choices=', '.join(outside)).add(details={"regions": outside})


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
# Forms


class FormLike(Protocol):
    """What the form checks read of a form: an ORM `Form`, or the ingest hot path's `FormRef`."""

    @property
    def id(self) -> int: ...

    @property
    def project_id(self) -> int: ...


def assigned_form_ids(session: Session, user: User) -> set[int]:
    """The forms assigned to the collector (empty: every open form). Cached on the user object for
    the request, since formList asks for every form."""
    cached: set[int] | None = user.__dict__.get("_assigned_form_ids")
    if cached is None:
        if "assignments" in user.__dict__:  # loaded with the user when the phone signed in
            cached = {a.form_id for a in user.assignments}
        else:
            cached = set(session.scalars(select(FormAssignment.form_id).where(FormAssignment.user_id == user.id)))
        user.__dict__["_assigned_form_ids"] = cached
    return cached


def may_fill(session: Session, user: User, form: FormLike) -> bool:
    """Whether the user may download this form to a phone and submit it (the form's state aside):
    admins and coordinators any form of their project, a collector the forms assigned to them (all
    when none is). Managers read care files and enter paper forms on the web, but use no phone."""
    if not user.active or user.project_id != form.project_id:
        return False
    if user.role in COORDINATORS:
        return True
    if user.role != "collector":
        return False
    assigned = assigned_form_ids(session, user)
    return not assigned or form.id in assigned


def may_enter_on_web(user: User, form: FormLike) -> bool:
    """Whether the user may fill this form in the browser (paper entry, web edits): every web role that
    reads care files (admins, coordinators, managers). Separate from may_fill on purpose: managers
    enter paper forms on the web, but do not download forms to Collect or submit from a phone."""
    return bool(user.active) and user.project_id == form.project_id and user.role in READERS


def form_reach(session: Session, project_id: int, form: Form | None) -> tuple[list[User], bool]:
    """The active collectors who receive the form on their phones, and whether it is project-wide (it
    goes to every collector without assignments, including those added later). A form not made yet
    (`None`) is project-wide: it has no assignments."""
    collectors = list(session.scalars(select(User).where(User.project_id == project_id, User.role == "collector",
                                                         User.active.is_(True))))
    assigned_to: dict[int, set[int]] = {}
    for user_id, form_id in session.execute(select(FormAssignment.user_id, FormAssignment.form_id).join(
            User, User.id == FormAssignment.user_id).where(User.project_id == project_id)):
        assigned_to.setdefault(user_id, set()).add(form_id)
    own = form is not None and any(form.id in ids for ids in assigned_to.values())
    unassigned = [c for c in collectors if not assigned_to.get(c.id)]
    project_wide = form is None or not own or bool(unassigned)
    reached = [c for c in collectors
               if not assigned_to.get(c.id) or (form is not None and form.id in assigned_to[c.id])]
    return reached, project_wide


def _province_scope(user: User) -> bool:
    return any(len(code) <= 2 for code in user.region_codes)


def may_change_form(session: Session, user: User, project_id: int, form: Form | None) -> bool:
    """Whether the user may publish, draft, upload files for, open/close or encrypt the form (`None`: a
    new form): an admin; a coordinator whose regions cover every collector the form reaches, with a
    province's scope for a project-wide form."""
    if not can(user, "form.manage") or user.project_id != project_id:
        return False
    if unscoped(user):
        return True
    reached, project_wide = form_reach(session, project_id, form)
    if project_wide and not _province_scope(user):
        return False
    return all(covers(user, code) for c in reached for code in c.region_codes)


def require_form_change(session: Session, user: User | None, project_id: int, form: Form | None) -> None:
    """403.77 or 403.78 unless the user may change the form (`user` None: the command line, an operator)."""
    if user is None:
        return
    require(user, "form.manage")
    if may_change_form(session, user, project_id, form):
        return
    name = form.xml_form_id if form is not None else None
    reached, project_wide = form_reach(session, project_id, form)
    if project_wide:
        raise problems.FORM_FOR_EVERYONE().add(form=name)
    outside = sorted({code for c in reached for code in c.region_codes if not covers(user, code)})
    raise problems.FORM_OUTSIDE_REGIONS(outside=", ".join(outside)).add(form=name, regions=outside)
