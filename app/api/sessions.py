"""POST /v1/sessions (sign in, as ODK Central: pyodk sends the user name as `email`)."""
from __future__ import annotations

from flask import Response, jsonify, request

from app.errors import Problem
from app.routeaccess import COLLECTORS, PUBLIC, declare
from app.runtime import runtime
from app.services.identity import sessions as session_service
from app.services.identity import signin

from . import bp
from .auth import api_user, client_ip, throttled


@bp.post("/v1/sessions")
@declare(PUBLIC)
def create_session() -> Response:
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        body = {}
    username = str(body.get("email") or body.get("username") or "")
    password = str(body.get("password") or "")
    if not username or not password:
        raise Problem(400, "400.3", "Send JSON with `email` (your user name) and `password`.")
    try:
        row = session_service.create_session(runtime().db, username, password, client_ip())
    except signin.Throttled as exc:
        raise throttled(exc) from None
    except signin.WrongPassword:
        raise Problem(401, "401.2", "Could not authenticate with the provided credentials.") from None
    return jsonify({"token": row.token, "createdAt": row.created_at.isoformat(),
                    "expiresAt": row.expires_at.isoformat()})


@bp.delete("/v1/sessions/<token>")
@declare(COLLECTORS)
def end_session(token: str) -> Response:
    user = api_user()
    with runtime().db.write() as session:
        # As Central: one's own session (signing out), or any as an administrator. Another user's token
        # answers as an unknown one does, so the answer does not confirm that it exists.
        if not session_service.end_session(session, token, user):
            raise Problem(404, "404.1", "No such session.")
    return jsonify({"success": True})
