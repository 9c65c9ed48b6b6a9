"""POST /v1/sessions (sign in, as ODK Central: pyodk sends the user name as `email`)."""
from __future__ import annotations

from typing import Any

from flask import request

from app import problems
from app.routeaccess import COLLECTORS, PUBLIC
from app.services.identity import sessions as session_service
from app.services.identity import signin

from . import Call, endpoint
from .auth import throttled


@endpoint("/v1/sessions", roles=PUBLIC, methods=["POST"], tx="none")
def create_session(call: Call) -> Any:
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        body = {}
    username = str(body.get("email") or body.get("username") or "")
    password = str(body.get("password") or "")
    if not username or not password:
        raise problems.SESSION_BODY_MISSING()
    try:
        row, token = session_service.create_session(call.rt.db, username, password, call.ip)
    except signin.Throttled as exc:
        raise throttled(exc) from None
    except signin.WrongPassword:
        raise problems.AUTHENTICATION_FAILED() from None
    return {"token": token, "createdAt": row.created_at.isoformat(), "expiresAt": row.expires_at.isoformat()}


@endpoint("/v1/sessions/<token>", roles=COLLECTORS, methods=["DELETE"], tx="write")
def end_session(call: Call, token: str) -> Any:
    # As Central: one's own session (signing out), or any as an administrator. Another user's token
    # answers as an unknown one does, so the answer does not confirm that it exists.
    if not session_service.end_session(call.session, token, call.user):
        raise problems.NO_SUCH_SESSION()
    return None
