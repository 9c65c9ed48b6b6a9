"""Sign in, sign out, change of password, language."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app.errors import Problem
from app.i18n import LANGUAGES, t
from app.models import User
from app.routeaccess import PUBLIC, declare
from app.runtime import runtime
from app.services import audit, signin
from app.services import users as user_service

from . import WebUser, bp, client_ip, db_user, requires


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("web.home")


@bp.route("/login", methods=["GET", "POST"])
@declare(PUBLIC)
def login() -> Any:
    error = None
    status = 200
    if request.method == "POST":
        rt = runtime()
        with rt.db.write() as s:
            result = signin.sign_in(s, request.form.get("username", ""), request.form.get("password", ""),
                                    client_ip())
            if isinstance(result, User):
                s.expunge(result)
        if isinstance(result, Problem):
            error, status = t(result.message), result.status
        elif result.role == "collector":
            error, status = t("Collectors use ODK Collect on their phones; this website is for coordinators, "
                              "managers and administrators."), 403
        else:
            session.clear()
            login_user(WebUser(result))
            session["lang"] = result.language
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), status


@bp.post("/logout")
@declare(PUBLIC)
def logout() -> Any:
    if current_user.is_authenticated:
        with runtime().db.write() as s:
            audit.record(s, db_user(), "logout", ip=client_ip())
    logout_user()
    session.clear()
    return redirect(url_for("web.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@requires()
def change_password() -> Any:
    error = None
    if request.method == "POST":
        rt = runtime()
        new = request.form.get("new", "")
        if new != request.form.get("repeat", ""):
            error = t("The two new passwords differ.")
        else:
            with rt.db.write() as s:
                user = s.get(User, current_user.id)
                assert user is not None
                if user_service.check_password(s, user.username, request.form.get("current", "")) is None:
                    error = t("The current password is wrong.")
                else:
                    try:
                        user_service.set_password(user, new, rt.config["DIGEST_REALM"])
                    except Problem as problem:
                        error = t(problem.message)
                    else:
                        audit.record(s, user, "password.change", ip=client_ip())
                        s.flush()
                        s.expunge(user)
                        login_user(WebUser(user))
                        flash(t("The password was changed."))
                        return redirect(url_for("web.home"))
    return render_template("password.html", error=error), (400 if error else 200)


@bp.post("/language")
@declare(PUBLIC)
def set_language() -> Any:
    lang = request.form.get("lang", "")
    if lang in LANGUAGES:
        session["lang"] = lang
        if current_user.is_authenticated:
            with runtime().db.write() as s:
                user = s.get(User, current_user.id)
                if user is not None:
                    user.language = lang
    return redirect(_safe_next(request.form.get("next")))


@bp.get("/")
@requires()
def home() -> Any:
    return render_template("home.html")
