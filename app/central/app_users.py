"""Central's app users are CareFile's collectors: list, create, delete, and form assignments.

- An app user created through the API is a collector whose user name is made from the display name
  (pinyin or Latin letters as given, else `collector-N`), with a random password nobody knows: the
  phone signs in with the QR token (`token` in the answer, as Central's field keys).
- Regions: the creator's regions unless the body narrows them (`regions`: codes inside the
  creator's). An admin has no regions of their own: without `regions` the collector gets none (their
  phone receives no child until regions are set on the website).
- Coordinators see and change only collectors with a region inside theirs (404 otherwise).
- Deleting deactivates the collector and revokes their tokens (submissions keep their submitter).
- Assignments: Central's role `app-user` (id 2) on a form; once a collector has one, their phone
  lists only assigned forms (collectors.set_assignments semantics).
"""
from __future__ import annotations

import re
import secrets
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app import problems
from app.central.shapes import iso, role_of
from app.models import Form, FormAssignment, User
from app.services import access, audit
from app.services.identity import collectors
from app.services.identity import users as user_service
from app.services.regions import covers, validate_code

MANAGERS = ("admin", "coordinator")


def require_manager(user: User, project_id: int) -> None:
    if not user.active or user.role not in MANAGERS:
        raise problems.COLLECTORS_MANAGED_BY_COORDINATORS()
    if project_id != user.project_id:
        raise problems.NOT_FOUND()


def _visible(actor: User, collector: User) -> bool:
    return access.may_manage_user(actor, collector)


def app_user_json(u: User, token: str | None) -> dict[str, Any]:
    return {"projectId": u.project_id, "id": u.id, "type": "field_key", "displayName": u.display_name or u.username,
            "username": u.username, "regions": u.region_codes, "token": token if u.active else None,
            "createdAt": iso(u.created_at), "updatedAt": None, "deletedAt": None}


def list_app_users(session: Session, actor: User, project_id: int, key: str) -> list[dict[str, Any]]:
    require_manager(actor, project_id)
    rows = [u for u in collectors.list_collectors(session, project_id) if u.active and _visible(actor, u)]
    tokens = collectors.token_statuses(session, [u.id for u in rows], key)
    return [app_user_json(u, tokens[u.id].token) for u in rows]


def _username(session: Session, display_name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._@-]+", "-", display_name.strip()).strip("-.").lower()[:60] or "collector"
    name = base
    while session.scalar(select(User.id).where(user_service.same_name(name))) is not None:
        name = f"{base}-{secrets.token_hex(2)}"
    return name


def _regions(actor: User, asked: Any) -> list[str]:
    if asked is None:
        codes = list(actor.region_codes)
    elif isinstance(asked, list) and all(isinstance(c, str) for c in asked):
        codes = [validate_code(c) for c in asked]
    else:
        raise problems.REGIONS_NOT_A_LIST()
    if actor.role != "admin":
        outside = [c for c in codes if not covers(actor.region_codes, c)]
        if outside:
            raise problems.COLLECTOR_REGION_OUTSIDE(outside=outside[0])
    if not codes and actor.role != "admin":
        raise problems.COLLECTOR_REGIONS_MISSING()
    return codes  # an admin (no regions of their own) may create one without: regions are then set on the website


def create_app_user(session: Session, actor: User, project_id: int, body: dict[str, Any], realm: str, key: str,
                    ip: str = "") -> dict[str, Any]:
    require_manager(actor, project_id)
    display = body.get("displayName")
    if not isinstance(display, str) or not display.strip() or len(display) > 200:
        raise problems.DISPLAY_NAME_MISSING()
    regions = _regions(actor, body.get("regions"))
    username = body.get("username") if isinstance(body.get("username"), str) else None
    user = user_service.create_user(session, project_id=project_id, username=username or _username(session, display),
                                    role="collector", password=secrets.token_urlsafe(24), realm=realm,
                                    regions=regions, display_name=display.strip())
    token = user_service.issue_token(session, user, key)
    audit.record(session, actor, "user.create", target=f"user:{user.username}", ip=ip, role="collector",
                 regions=regions, via="api")
    return app_user_json(user, token.token)


def get_app_user(session: Session, actor: User, project_id: int, actor_id: int) -> User:
    require_manager(actor, project_id)
    u = session.get(User, actor_id)
    if u is None or u.project_id != project_id or u.role != "collector" or not u.active or not _visible(actor, u):
        raise problems.NOT_FOUND()
    return u


def delete_app_user(session: Session, actor: User, project_id: int, actor_id: int, ip: str = "") -> None:
    u = get_app_user(session, actor, project_id, actor_id)
    user_service.set_active(u, False)
    user_service.revoke_tokens(session, u)
    audit.record(session, actor, "user.revoke", target=f"user:{u.username}", ip=ip, deleted=True, via="api")


# ---------------------------------------------------------------- form assignments


def _app_user_role(role: str) -> None:
    found = role_of(role)
    if found is None or found[2] != "app-user":
        raise problems.ONLY_APP_USER_ROLE(role=role)


def _form(session: Session, project_id: int, xml_form_id: str) -> Form:
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None:
        raise problems.NOT_FOUND()
    return form


def assign(session: Session, actor: User, project_id: int, xml_form_id: str, role: str, actor_id: int,
           ip: str = "") -> None:
    _app_user_role(role)
    u = get_app_user(session, actor, project_id, actor_id)
    form = _form(session, project_id, xml_form_id)
    exists = session.scalar(select(FormAssignment.id).where(FormAssignment.user_id == u.id,
                                                            FormAssignment.form_id == form.id))
    if exists is not None:
        raise problems.APP_USER_ASSIGNED_ALREADY(username=u.username, xml_form_id=xml_form_id)
    session.add(FormAssignment(user_id=u.id, form_id=form.id))
    audit.record(session, actor, "user.update", target=f"user:{u.username}", ip=ip, assigned=xml_form_id, via="api")


def unassign(session: Session, actor: User, project_id: int, xml_form_id: str, role: str, actor_id: int,
             ip: str = "") -> None:
    _app_user_role(role)
    u = get_app_user(session, actor, project_id, actor_id)
    form = _form(session, project_id, xml_form_id)
    gone = session.execute(delete(FormAssignment).where(FormAssignment.user_id == u.id,
                                                        FormAssignment.form_id == form.id))
    if not gone.rowcount:  # type: ignore[attr-defined]
        raise problems.APP_USER_NOT_ASSIGNED(username=u.username, xml_form_id=xml_form_id)
    audit.record(session, actor, "user.update", target=f"user:{u.username}", ip=ip, unassigned=xml_form_id,
                 via="api")


def form_assignments(session: Session, actor: User, project_id: int, xml_form_id: str,
                     role: str | None = None) -> list[dict[str, Any]]:
    """[{actorId, roleId}] of the form; with a role, the actors themselves (Central's two shapes)."""
    require_manager(actor, project_id)
    if role is not None:
        _app_user_role(role)
    form = _form(session, project_id, xml_form_id)
    users = session.scalars(select(User).join(FormAssignment, FormAssignment.user_id == User.id)
                            .where(FormAssignment.form_id == form.id, User.active.is_(True)).order_by(User.id))
    visible = [u for u in users if _visible(actor, u)]
    if role is None:
        return [{"actorId": u.id, "roleId": 2} for u in visible]
    return [{"id": u.id, "type": "field_key", "displayName": u.display_name or u.username,
             "createdAt": iso(u.created_at), "updatedAt": None, "deletedAt": None} for u in visible]


__all__ = ["assign", "create_app_user", "delete_app_user", "form_assignments",
           "list_app_users", "unassign"]
