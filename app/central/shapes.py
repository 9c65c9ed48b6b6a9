"""Read models in ODK Central's JSON shapes (docs/odk-protocol.md, *Central's REST API and OData*), region-scoped."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, and_, case, func, select, true
from sqlalchemy.orm import Session

from app import problems
from app.central.odata import REVIEW_TO_CENTRAL
from app.models import (
    Dataset,
    Entity,
    Form,
    FormVersion,
    Project,
    Submission,
    SubmissionAttachment,
    SubmissionVersion,
    User,
)
from app.services import access
from app.services.schemas import schema_of
from app.services.submissions.records import InstanceNames


def iso(dt: Any) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def project_json(p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "description": None, "archived": False, "keyId": None,
            "createdAt": iso(p.created_at), "updatedAt": None, "deletedAt": None}


def user_json(u: User) -> dict[str, Any]:
    return {"id": u.id, "type": "user", "displayName": u.display_name or u.username, "email": u.username,
            "createdAt": iso(u.created_at), "updatedAt": None, "deletedAt": None, "role": u.role}


def form_json(form: Form) -> dict[str, Any]:
    fv = form.current_version
    return {"projectId": form.project_id, "xmlFormId": form.xml_form_id, "name": fv.title if fv else None,
            "version": fv.version if fv else "", "hash": fv.md5 if fv else None, "state": form.state,
            "enketoId": None, "keyId": None, "createdAt": iso(form.created_at),
            "updatedAt": iso(fv.published_at) if fv else None, "publishedAt": iso(fv.published_at) if fv else None}


def projects_for(session: Session, user: User) -> list[Project]:
    access.require_reader(user)
    return list(session.scalars(select(Project).where(Project.id == user.project_id)))


def get_project(session: Session, user: User, project_id: int) -> Project:
    access.require_reader(user)
    project = session.get(Project, project_id)
    if project is None or project_id != user.project_id:
        raise problems.NOT_FOUND()
    return project


def get_form(session: Session, user: User, project_id: int, xml_form_id: str) -> Form:
    get_project(session, user, project_id)
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None or form.current_version is None:
        raise problems.NOT_FOUND()
    return form


def review_column() -> Any:
    return case(*[(Submission.review_state == ours, theirs) for ours, theirs in REVIEW_TO_CENTRAL.items()
                  if theirs is not None], else_=None)


def submissions_query(user: User, form: Form, deleted: bool | None = False) -> Select[Any]:
    """The form's submissions the user sees; with `deleted`, those in the trash instead (`?deleted=true`);
    None: both (an OData filter on `__system/deletedAt`, as Central)."""
    return (select(Submission, SubmissionVersion, FormVersion.version, User.display_name, User.username)
            .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
            .join(FormVersion, FormVersion.id == SubmissionVersion.form_version_id)
            .outerjoin(User, User.id == Submission.submitter_id)
            .where(Submission.form_id == form.id,
                   true() if deleted is None else
                   Submission.deleted_at.is_not(None) if deleted else Submission.deleted_at.is_(None),
                   access.submission_filter(user, form.project_id)))


def attachment_counts(session: Session, version_ids: list[int]) -> dict[int, tuple[int, int]]:
    if not version_ids:
        return {}
    rows = session.execute(
        select(SubmissionAttachment.version_id, func.count(),
               func.count(SubmissionAttachment.blob_key))
        .where(SubmissionAttachment.version_id.in_(version_ids)).group_by(SubmissionAttachment.version_id))
    return {vid: (int(present), int(expected)) for vid, expected, present in rows}


def edits_count(session: Session, submission_ids: list[int]) -> dict[int, int]:
    if not submission_ids:
        return {}
    rows = session.execute(select(SubmissionVersion.submission_id, func.count())
                           .where(SubmissionVersion.submission_id.in_(submission_ids))
                           .group_by(SubmissionVersion.submission_id))
    return {sid: int(n) - 1 for sid, n in rows}


def submission_json(sub: Submission, sv: SubmissionVersion, names: InstanceNames) -> dict[str, Any]:
    """Central's Submission; `names` masks instance names built from sensitive answers for the reader."""
    name = names(sv)
    return {"instanceId": sub.instance_id, "submitterId": sub.submitter_id, "deviceId": sub.device_id,
            "createdAt": iso(sub.created_at), "updatedAt": iso(sub.updated_at) if sub.updated_at != sub.created_at
            else None, "reviewState": REVIEW_TO_CENTRAL.get(sub.review_state, sub.review_state),
            "userAgent": sv.user_agent, "instanceName": name,
            # Central's SubmissionDef: who sent this version, from which device and app (the device is
            # kept for the first version only: an edit's device is not stored)
            "currentVersion": {"instanceId": sv.instance_id, "instanceName": name,
                               "submitterId": sv.submitter_id if sv.submitter_id is not None else sub.submitter_id,
                               "deviceId": sub.device_id if sv.deprecated_id is None else None,
                               "userAgent": sv.user_agent, "createdAt": iso(sv.received_at), "current": True}}


def list_submissions(session: Session, user: User, form: Form, deleted: bool = False) -> Iterator[dict[str, Any]]:
    q = submissions_query(user, form, deleted).order_by(Submission.created_at.desc(), Submission.id.desc())
    names = InstanceNames(session, user, form.project_id)
    for sub, sv, _v, _n, _u in session.execute(q.execution_options(yield_per=500)):
        yield {**submission_json(sub, sv, names), "deletedAt": iso(sub.deleted_at)}


def get_submission(session: Session, user: User, form: Form, instance_id: str) -> tuple[Submission, SubmissionVersion]:
    row = session.execute(submissions_query(user, form).where(Submission.instance_id == instance_id)).first()
    if row is None:
        raise problems.NOT_FOUND()
    return row[0], row[1]


# ---------------------------------------------------------------- extended metadata (X-Extended-Metadata: true)


def project_extended(session: Session, user: User, p: Project) -> dict[str, Any]:
    """Central's extended project: counts of forms, app users, entity lists; last submission and entity,
    as far as the caller may see (submissions and entities of their regions)."""
    out = project_json(p)
    out["forms"] = int(session.scalar(select(func.count()).select_from(Form).where(
        Form.project_id == p.id, Form.current_version_id.is_not(None))) or 0)
    out["appUsers"] = int(session.scalar(select(func.count()).select_from(User).where(
        User.project_id == p.id, User.role == "collector", User.active.is_(True))) or 0)
    out["datasets"] = int(session.scalar(select(func.count()).select_from(Dataset).where(
        Dataset.project_id == p.id)) or 0)
    out["lastSubmission"] = iso(session.scalar(
        select(func.max(Submission.created_at)).join(Form, Form.id == Submission.form_id)
        .where(Form.project_id == p.id, Submission.deleted_at.is_(None),
               access.submission_filter(user, p.id))))
    out["lastEntity"] = iso(session.scalar(
        select(func.max(Entity.created_at)).join(Dataset, Dataset.id == Entity.dataset_id)
        .where(Dataset.project_id == p.id, Entity.deleted_at.is_(None),
               access.region_filter(user, Entity.region_code))))
    return out


def form_extended(session: Session, user: User, form: Form) -> dict[str, Any]:
    """Central's extended form: submissions, reviewStates, lastSubmission, entityRelated, createdBy,
    excelContentType — counted over the submissions the caller may see."""
    out = form_json(form)
    visible = and_(Submission.form_id == form.id, Submission.deleted_at.is_(None),
                   access.region_filter(user, Submission.region_code))
    out["submissions"] = int(session.scalar(select(func.count()).select_from(Submission).where(visible)) or 0)
    counts = {state: n for state, n in session.execute(select(Submission.review_state, func.count()).where(visible)
                                                        .group_by(Submission.review_state))}
    out["reviewStates"] = {"received": int(counts.get("received", 0)), "hasIssues": int(counts.get("has_issues", 0)),
                           "edited": int(counts.get("edited", 0))}
    out["lastSubmission"] = iso(session.scalar(select(func.max(Submission.created_at)).where(visible)))
    fv = form.current_version
    schema = schema_of(fv) if fv is not None else None
    related = bool(schema is not None and schema.entity is not None) or bool(
        fv is not None and any(a.dataset for a in fv.attachments))
    out["entityRelated"] = related
    out["createdBy"] = None  # forms are published by `carefile form publish` or the website, not by an actor
    out["excelContentType"] = None
    out["publicLinks"] = 0
    if fv is not None and access.can(user, "form.manage"):  # as Central: for those who may change the form
        out["publishNotes"] = fv.publish_notes
    return out


def extended(headers: Any) -> bool:
    return str(headers.get("X-Extended-Metadata", "")).strip().lower() == "true"


# ---------------------------------------------------------------- roles and version

# Central's roles mapped onto CareFile's: `app-user` are our collectors (the only role a form can be
# assigned to); Central's project roles stand for our web roles.
ROLES = (
    (1, "Administrator", "admin", "admin"),
    (2, "App User", "app-user", "collector"),
    (3, "Project Manager", "manager", "coordinator"),
    (5, "Project Viewer", "viewer", "manager"),
)


VERBS = {
    "collector": ["form.read", "form.list", "submission.create"],
    "manager": ["project.read", "form.read", "form.list", "submission.read", "submission.list", "submission.update",
                "entity.read", "entity.list", "dataset.read", "dataset.list"],
}
VERBS["coordinator"] = VERBS["manager"] + ["form.create", "form.update", "assignment.create", "assignment.delete",
                                           "assignment.list", "field_key.create", "field_key.delete", "field_key.list",
                                           "entity.create", "entity.update", "entity.delete", "entity.restore",
                                           "dataset.create", "dataset.update"]
VERBS["admin"] = VERBS["coordinator"] + ["user.create", "user.update", "audit.read"]


def verbs_of(user: User) -> list[str]:
    """What the caller may do, in Central's verb names (users/current with X-Extended-Metadata)."""
    return sorted(set(VERBS.get(user.role, [])))


def roles_json() -> list[dict[str, Any]]:
    return [{"id": rid, "name": name, "system": system, "carefileRole": ours, "verbs": [],
             "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": None} for rid, name, system, ours in ROLES]


def role_of(key: str) -> tuple[int, str, str, str] | None:
    """A role by id ("2") or system name ("app-user")."""
    return next((r for r in ROLES if key in (str(r[0]), r[2])), None)


def version_text(version: str) -> str:
    """`/version.txt` in the layout of Central's (centralpy `check` reads it)."""
    return (f"versions:\n{version} (v{version})\n"
            f" {version} client (carefile-{version})\n {version} server (carefile-{version})\n")
