"""Sign in, sign out, change of password, language."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.errors import Problem
from app.i18n import LANGUAGES, t
from app.models import User
from app.routeaccess import PUBLIC, declare
from app.runtime import runtime
from app.services import audit
from app.services.identity import signin
from app.services.identity import users as user_service

from . import WebUser, bp, client_ip, db_user, requires


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("web.home")


DEVICE_COOKIE = "carefile_device"
DEVICE_ACCOUNTS = 5  # accounts one browser remembers


def _device_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="carefile-known-device")


def _device_accounts() -> list[str]:
    """User names this browser signed in as before (signed cookie; expired or forged: none)."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return []
    try:
        names = _device_signer().loads(raw, max_age=int(signin.KNOWN_FOR.total_seconds()))
    except BadSignature:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _remember_device(resp: Any, username: str) -> Any:
    names = [username] + [n for n in _device_accounts() if n != username][:DEVICE_ACCOUNTS - 1]
    resp.set_cookie(DEVICE_COOKIE, _device_signer().dumps(names), max_age=int(signin.KNOWN_FOR.total_seconds()),
                    httponly=True, samesite="Lax", secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))
    return resp


def _start_session(user: User) -> None:
    """Sign the browser in with a new server-side web session (a fresh cookie, a fresh CSRF token)."""
    from app.services.identity import sessions as session_service

    with runtime().db.write() as s:
        sid = session_service.start_web_session(s, user.id)
    session.clear()
    login_user(WebUser(user, sid))


@bp.route("/login", methods=["GET", "POST"])
@declare(PUBLIC)
def login() -> Any:
    error = None
    status = 200
    headers: dict[str, str] = {}
    if request.method == "POST":
        rt = runtime()
        username = request.form.get("username", "").strip()
        try:
            user = signin.sign_in(rt.db, username, request.form.get("password", ""), client_ip(),
                                  known_device=username in _device_accounts())
        except signin.Throttled as exc:
            error, status = t("Too many wrong passwords. Wait {minutes} minute(s) and try again; until then even "
                              "the right password is refused. An administrator can reset your password to lift "
                              "this at once.", minutes=exc.minutes), 429
            headers["Retry-After"] = str(exc.retry_after)
        except signin.WrongPassword:
            error, status = t("The user name or password is wrong."), 401
        else:
            if user.role == "collector":
                error, status = t("Collectors use ODK Collect on their phones; this website is for coordinators, "
                                  "managers and administrators."), 403
            else:
                _start_session(user)
                session["lang"] = user.language
                return _remember_device(redirect(_safe_next(request.args.get("next"))), user.username)
    return render_template("login.html", error=error), status, headers


@bp.post("/logout")
@declare(PUBLIC)
def logout() -> Any:
    from app.services.identity import sessions as session_service

    if current_user.is_authenticated:
        with runtime().db.write() as s:
            audit.record(s, db_user(), "logout", ip=client_ip())
            session_service.end_web_session(s, current_user.web_session_id)  # a copied cookie dies with it
    logout_user()
    session.clear()
    return redirect(url_for("web.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@requires()
def change_password() -> Any:
    error = None
    headers: dict[str, str] = {}
    if request.method == "POST":
        rt = runtime()
        new = request.form.get("new", "")
        current = request.form.get("current", "")
        if new != request.form.get("repeat", ""):
            error = t("The two new passwords differ.")
        else:
            try:  # the current password is a password check like any other: throttled (a signed-in
                # browser counts as a known device: only this address's own count holds it back)
                signin.verify(rt.db, current_user.username, client_ip(),
                              lambda u: user_service.password_matches(u, current), channel="web", known_device=True)
            except signin.Throttled as exc:
                error = t("Too many wrong passwords. Wait {minutes} minute(s) and try again; until then even "
                          "the right password is refused. An administrator can reset your password to lift "
                          "this at once.", minutes=exc.minutes)
                headers["Retry-After"] = str(exc.retry_after)
                return render_template("password.html", error=error), 429, headers
            except signin.WrongPassword:
                error = t("The current password is wrong.")
            else:
                with rt.db.write() as s:
                    user = s.get(User, current_user.id)
                    assert user is not None
                    try:
                        # ends every web session and API token of the user, this browser's too ...
                        user_service.set_password(user, new, rt.config["DIGEST_REALM"])
                    except Problem as problem:
                        error = problem.translated(t)
                        s.rollback()
                    else:
                        audit.record(s, user, "password.change", ip=client_ip())
                        s.flush()
                        s.expunge(user)
                if error is None:
                    _start_session(user)  # ... which signs in again with a new one
                    flash(t("The password was changed."))
                    return redirect(url_for("web.home"))
    return render_template("password.html", error=error), (400 if error else 200), headers


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
