"""Who is calling the JSON API: a bearer session token, or HTTP Basic over HTTPS."""
from __future__ import annotations

from flask import request

from app.errors import Problem
from app.models import User
from app.runtime import runtime
from app.services import sessions as session_service
from app.services import users as user_service


def api_user() -> User:
    rt = runtime()
    auth = request.authorization
    with rt.db.session() as session:
        if auth is not None and auth.type == "bearer" and auth.token:
            user = session_service.user_for_session(session, auth.token)
        elif auth is not None and auth.type == "basic":
            if not (request.is_secure or rt.config["ALLOW_BASIC_OVER_HTTP"]):
                raise Problem(401, "401.3", "This authentication method is only available over HTTPS.")
            user = user_service.check_password(session, auth.username or "", auth.password or "")
        else:
            user = None
        if user is None:
            raise Problem(401, "401.2", "Could not authenticate with the provided credentials.")
        session.expunge(user)
        return user
