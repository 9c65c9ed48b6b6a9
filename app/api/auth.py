"""Who is calling the JSON API: a bearer session token, or HTTP Basic over HTTPS (throttled)."""
from __future__ import annotations

from flask import g, request

from app import problems
from app.models import User
from app.runtime import runtime
from app.services.identity import sessions as session_service
from app.services.identity import signin
from app.services.identity import users as user_service


def client_ip() -> str:
    """The caller's address (the proxy's X-Forwarded-For only with CAREFILE_TRUST_PROXY: ProxyFix)."""
    return request.remote_addr or ""


def throttled(exc: signin.Throttled) -> signin.Throttled:
    """Remember the wait for the Retry-After header (app.create_app adds it to the 429)."""
    g.retry_after = exc.retry_after
    return exc


def api_user() -> User:
    rt = runtime()
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        if not (request.is_secure or rt.config["ALLOW_BASIC_OVER_HTTP"]):
            raise problems.HTTPS_REQUIRED()
        password = auth.password or ""
        try:
            return signin.verify(rt.db, auth.username or "", client_ip(),
                                 lambda u: user_service.password_matches(u, password), channel="basic")
        except signin.Throttled as exc:
            raise throttled(exc) from None
        except signin.WrongPassword:
            raise problems.AUTHENTICATION_FAILED() from None
    user = None
    if auth is not None and auth.type == "bearer" and auth.token:
        with rt.db.session() as session:
            user = session_service.user_for_session(session, auth.token)
            if user is not None:
                session.expunge(user)
    if user is None:
        raise problems.AUTHENTICATION_FAILED()
    return user
