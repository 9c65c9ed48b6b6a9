"""Mobile-first HTML pages for coordinators, managers and administrators.

Foundation: flask-login sessions, CSRF tokens on every POST, the UI language, errors as pages.
Pages live in one module per area (forms, collectors, dashboard, submissions, children, audit,
users); HTML input handling in web/inputs.py.
"""
from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, abort, g, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user
from werkzeug.exceptions import HTTPException

from app import faults, problems
from app.db import retrying
from app.errors import Problem
from app.i18n import LANGUAGES, current_language, form_label, t
from app.models import User
from app.routeaccess import WEB_USERS, declare, declared
from app.runtime import runtime

bp = Blueprint("web", __name__, template_folder="../templates/web")
login_manager = LoginManager()

# Main navigation: (order, endpoint, label, roles). Each page module registers its entries.
_NAV: list[tuple[int, str, str, tuple[str, ...]]] = []


def register_nav(order: int, endpoint: str, label: str, roles: tuple[str, ...]) -> None:
    _NAV.append((order, endpoint, label, roles))
    _NAV.sort()


def nav_items() -> list[tuple[str, str, tuple[str, ...]]]:
    from flask import current_app

    return [(e, label, roles) for _, e, label, roles in _NAV if e in current_app.view_functions]


def nav_here(endpoint: str | None) -> str | None:
    """The one navigation entry a page belongs to: its own entry, else the shortest entry of its family
    (an endpoint's name before its last '_': web.children_view belongs to web.children) — so the
    duplicates page lights only "Duplicates" and a child's file only "Children"."""
    if not endpoint:
        return None
    family = [e for _, e, _, _ in _NAV if endpoint == e or endpoint.startswith(e.rsplit("_", 1)[0] + "_")]
    return endpoint if endpoint in family else min(family, key=len, default=None)


class WebUser(UserMixin):  # type: ignore[misc]
    """The signed-in user, detached from the database session."""

    def __init__(self, user: User, session_id: str) -> None:
        self.row = user
        self.id = user.id
        self.username = user.username
        self.role = user.role
        self.region_codes = user.region_codes
        self.project_id = user.project_id
        self.language = user.language
        self.web_session_id = session_id
        # The cookie names a server-side web session (services.sessions): signing out, or a change of
        # the user's password, role or active state, deletes it, and a replayed cookie signs in no one.
        self._cookie_id = f"{user.id}:{session_id}"

    def get_id(self) -> str:
        return self._cookie_id


@login_manager.user_loader
def _load_user(cookie_id: str) -> WebUser | None:
    from app.services.identity import sessions as session_service

    uid, _, sid = cookie_id.partition(":")
    if not uid.isdigit() or not sid:
        return None
    with runtime().db.session() as s:
        user = session_service.user_for_web_session(s, int(uid), sid)
        if user is None:
            return None
        s.expunge(user)
        return WebUser(user, sid)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


@bp.before_request
def _check_csrf() -> None:
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            raise problems.CSRF_TOKEN_MISSING()
    if current_user.is_authenticated:
        g.lang = session.get("lang") or current_user.language


def requires(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Signed in with one of roles (any web role when none are given); collectors never."""

    allowed = roles or WEB_USERS

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
            if current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        # The page declares what `requires` enforces (tests/app/access/test_access_matrix.py reads it); an
        # explicit @declare on the view (e.g. scoped=True) is kept.
        if declared(view) is None:
            declare(allowed)(wrapper)
        return wrapper

    return decorator


def retried(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run a page's write (one transaction) again when PostgreSQL reports a lost race (app.db.retrying):
    case work, merges and held decisions racing phones' submissions never show a fault page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return retrying(lambda: view(*args, **kwargs), f"{request.method} {request.path}")

    return wrapper


def db_user() -> User:
    """The signed-in user's row (detached), for the services."""
    user: User = current_user.row
    return user


def client_ip() -> str:
    return request.remote_addr or ""


PAGE_MODULES = ("auth", "forms", "collectors", "dashboard", "submissions", "children", "users", "audit", "exports",
                "encryption", "held", "places", "reports", "fill", "trash")


def _error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


def _fault_page(problem: Problem) -> tuple[str, int]:
    # The page's navigation asks who is signed in, which needs the database that just failed: render it
    # for nobody (flask-login keeps the request's user in g._login_user).
    g._login_user = login_manager.anonymous_user()
    return _error_page(problem.status, problem.translated(t))


faults.register(bp, _fault_page)  # database / blob store / disk unreachable: a 503 page with Retry-After


def csp_nonce() -> str:
    """This request's script nonce: every inline <script> of a page carries it (templates: csp_nonce()), and
    the Content-Security-Policy admits only scripts from this server and those carrying it."""
    nonce = g.get("csp_nonce")
    if not nonce:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return str(nonce)


def content_security_policy(cfg: dict[str, Any], nonce: str = "") -> str:
    """Only this server, plus the S3 endpoint photos are redirected to when blobs live in S3; inline scripts
    only with the request's nonce (no 'unsafe-inline' for scripts, no inline event handlers)."""
    images = "'self' data: blob:"
    if str(cfg.get("STORAGE_URL", "")).startswith("s3://"):
        from urllib.parse import urlsplit

        endpoint = cfg.get("S3_ENDPOINT_URL")
        images += f" {urlsplit(endpoint).scheme}://{urlsplit(endpoint).netloc}" if endpoint else " https://*.amazonaws.com"
    scripts = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    return (f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
            f"img-src {images}; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors 'none'")


def init_app(app: Flask) -> None:
    cfg = app.config["CAREFILE"]
    public = str(cfg.get("PUBLIC_URL") or "")
    secure = cfg.get("SECURE_COOKIES")
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(secure) if secure is not None else public.startswith("https://"),
        SESSION_COOKIE_NAME="carefile_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
    )
    login_manager.login_view = "web.login"
    login_manager.init_app(app)
    app.jinja_env.globals.update(_=t, csrf_token=csrf_token, current_language=current_language,
                                 LANGUAGES=LANGUAGES, form_label=form_label, nav_items=nav_items,
                                 nav_here=nav_here)

    import importlib
    import importlib.util

    # Page modules register their routes on import; each area is its own module.
    for name in PAGE_MODULES:
        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            importlib.import_module(f"{__name__}.{name}")
    app.register_blueprint(bp)

    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _security_headers(resp: Any) -> Any:
        # Pages load nothing from other sites (no CDN, fonts or map tiles); the browser enforces it.
        if request.blueprint == "web":
            resp.headers.setdefault("Content-Security-Policy", content_security_policy(cfg, csp_nonce()))
            resp.headers.setdefault("X-Content-Type-Options", "nosniff")
            resp.headers.setdefault("Referrer-Policy", "same-origin")
        return resp

    @app.errorhandler(Problem)
    def _problem(problem: Problem) -> Any:
        if request.blueprint == "api" or request.path.startswith("/v1/"):
            return problem.to_dict(), problem.status
        return _error_page(problem.status, problem.translated(t))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if request.blueprint is None and request.path.startswith("/v1/"):  # no route matched: API clients read JSON
            return {"code": float(f"{exc.code}.1"), "message": exc.description or exc.name}, exc.code
        if request.blueprint != "web":
            return exc
        messages = {404: t("Page not found."), 403: t("You may not open this page.")}
        return _error_page(exc.code or 500, messages.get(exc.code or 500, exc.description or ""))
