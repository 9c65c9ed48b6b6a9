"""Users (administrators only): list, add, edit role / regions / name, deactivate, reset password.

Every change is written to the audit log: ``user.create`` with the new user's role and regions,
``user.update`` with what changed ({field: [old, new]}; passwords are never logged, only that one
was reset).
"""
from __future__ import annotations

import re
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import problems
from app.errors import Problem
from app.i18n import t
from app.models import ROLES, User
from app.runtime import runtime
from app.services import access, audit
from app.services.identity import users as user_service

from . import bp, client_ip, db_user, register_nav, requires
from .places import region_field_error

register_nav(50, "web.users_index", "Users", ("admin",))

ROLE_LABELS = {
    "admin": "Administrator",
    "coordinator": "Coordinator",
    "manager": "Manager",
    "collector": "Collector",
}


def role_label(role: str) -> str:
    return t(ROLE_LABELS.get(role, role))


def _region_codes(text: str) -> list[str]:
    return [c for c in re.split(r"[\s,，;；、]+", text) if c]


def _load(session: Any, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.project_id != current_user.project_id:
        abort(404)
    return user


@bp.get("/users")
@requires("admin")
def users_index() -> Any:
    role = request.args.get("role", "")
    with runtime().db.session() as s:
        users = user_service.list_users(s, current_user.project_id)
        counts = {r: sum(1 for u in users if u.role == r) for r in ROLES}
        rows = [{"id": u.id, "username": u.username, "display_name": u.display_name, "role": u.role,
                 "regions": u.region_codes, "active": u.active} for u in users if not role or u.role == role]
    return render_template("users/index.html", rows=rows, role_label=role_label, roles=ROLES, role=role,
                           counts=counts, total=len(users))


@bp.route("/users/new", methods=["GET", "POST"])
@requires("admin")
def users_new() -> Any:
    error = None
    if request.method == "POST":
        f = request.form
        rt = runtime()
        if f.get("password", "") != f.get("repeat", ""):
            error = t("The two passwords differ.")
        elif region_field_error(_region_codes(f.get("regions", ""))):
            error = region_field_error(_region_codes(f.get("regions", "")))
        else:
            try:
                with rt.db.write() as s:
                    user = user_service.create_user(
                        s, project_id=current_user.project_id, username=f.get("username", ""),
                        role=f.get("role", ""), password=f.get("password", ""), realm=rt.config["DIGEST_REALM"],
                        regions=_region_codes(f.get("regions", "")), display_name=f.get("display_name", "").strip())
                    audit.record(s, db_user(), "user.create", target=f"user:{user.username}", ip=client_ip(),
                                 role=user.role, regions=user.region_codes, display_name=user.display_name)
                    new_id = user.id
            except Problem as problem:
                error = problem.translated(t)
            else:
                flash(t("The user {name} was added.", name=f.get("username", "").strip()))
                return redirect(url_for("web.users_edit", user_id=new_id))
    return render_template("users/new.html", error=error, roles=ROLES, role_label=role_label), (400 if error else 200)


def _edit_page(user_id: int, error: str | None = None, status: int = 200) -> Any:
    with runtime().db.session() as s:
        u = _load(s, user_id)
        row = {"id": u.id, "username": u.username, "display_name": u.display_name, "role": u.role,
               "regions": u.region_codes, "active": u.active, "created_at": u.created_at,
               "sees_sensitive": access.sees_sensitive(u)}
    return render_template("users/edit.html", u=row, error=error, roles=ROLES, role_label=role_label,
                           is_self=user_id == current_user.id), status


@bp.get("/users/<int:user_id>")
@requires("admin")
def users_edit(user_id: int) -> Any:
    return _edit_page(user_id)


@bp.post("/users/<int:user_id>")
@requires("admin")
def users_update(user_id: int) -> Any:
    f = request.form
    try:
        with runtime().db.write() as s:
            user = _load(s, user_id)
            role = f.get("role") or None
            if user.id == current_user.id and role is not None and role != user.role:
                raise problems.CANNOT_CHANGE_OWN_ROLE()
            changes: dict[str, Any] = user_service.update_user(user, role=role, display_name=f.get("display_name"))
            if "regions" in f:
                region_error = region_field_error(_region_codes(f.get("regions", "")))
                if region_error:
                    raise problems.REGIONS_FIELD_INVALID(detail=region_error)
                changes.update(user_service.set_regions(s, user, _region_codes(f.get("regions", ""))))
            if "sees_sensitive_shown" in f:
                wanted = f.get("sees_sensitive") == "1"
                if wanted != bool(user.sees_sensitive):
                    changes["sees_sensitive"] = [bool(user.sees_sensitive), wanted]
                    user.sees_sensitive = wanted
            if changes:
                audit.record(s, db_user(), "user.update", target=f"user:{user.username}", ip=client_ip(),
                             **changes)
    except Problem as problem:
        return _edit_page(user_id, problem.translated(t), problem.status)
    flash(t("The changes were saved.") if changes else t("Nothing was changed."))
    return redirect(url_for("web.users_edit", user_id=user_id))


@bp.post("/users/<int:user_id>/active")
@requires("admin")
def users_set_active(user_id: int) -> Any:
    active = request.form.get("active") == "1"
    if user_id == current_user.id and not active:
        return _edit_page(user_id, t("You cannot deactivate your own account."), 400)
    with runtime().db.write() as s:
        user = _load(s, user_id)
        if user_service.set_active(user, active):
            audit.record(s, db_user(), "user.update", target=f"user:{user.username}", ip=client_ip(),
                         active=[not active, active])
        name = user.username
    flash(t("{name} can sign in again.", name=name) if active
          else t("{name} was deactivated: no more sign-in on the website or from ODK Collect.", name=name))
    return redirect(url_for("web.users_edit", user_id=user_id))


@bp.post("/users/<int:user_id>/password")
@requires("admin")
def users_reset_password(user_id: int) -> Any:
    f = request.form
    if user_id == current_user.id:
        # Resetting would sign the administrator out; "Change password" asks for the current one.
        return redirect(url_for("web.change_password"))
    if f.get("password", "") != f.get("repeat", ""):
        return _edit_page(user_id, t("The two passwords differ."), 400)
    rt = runtime()
    try:
        with rt.db.write() as s:
            user = _load(s, user_id)
            user_service.reset_password(s, user, f.get("password", ""), rt.config["DIGEST_REALM"])
            audit.record(s, db_user(), "user.update", target=f"user:{user.username}", ip=client_ip(),
                         password="reset")
            name = user.username
    except Problem as problem:
        return _edit_page(user_id, problem.translated(t), problem.status)
    flash(t("The password of {name} was reset. Tell them the new one in person.", name=name))
    return redirect(url_for("web.users_edit", user_id=user_id))
