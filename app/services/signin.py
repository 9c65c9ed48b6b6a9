"""Web sign-in with throttling of failed attempts (per user name and per address)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import Problem
from app.models import LoginFailure, User, utcnow

from . import audit
from . import users as user_service
from .ops.metrics import LOGIN_FAILURES

WINDOW = timedelta(minutes=15)
MAX_PER_USER = 5
MAX_PER_IP = 20


def _failures(session: Session, column: object, value: str) -> int:
    since = utcnow() - WINDOW
    return int(session.scalar(select(func.count()).select_from(LoginFailure).where(
        column == value, LoginFailure.at >= since)) or 0)  # type: ignore[operator]


def sign_in(session: Session, username: str, password: str, ip: str) -> User | Problem:
    """The user, or the Problem to show: 401 for wrong credentials, 429 after too many failures.

    Returned, not raised, so the caller commits the recorded failure before answering.
    """
    username = username.strip()
    if (_failures(session, LoginFailure.username, username) >= MAX_PER_USER
            or _failures(session, LoginFailure.ip, ip) >= MAX_PER_IP):
        audit.record(session, None, "login.failed", ip=ip, username=username, reason="throttled")
        LOGIN_FAILURES.labels("throttled").inc()
        return Problem(429, "429.1", "Too many failed sign-ins. Wait 15 minutes and try again, or ask an "
                      "administrator to reset your password.")
    user = user_service.check_password(session, username, password)
    if user is None:
        session.add(LoginFailure(username=username, ip=ip))
        audit.record(session, None, "login.failed", ip=ip, username=username)
        LOGIN_FAILURES.labels("password").inc()
        return Problem(401, "401.2", "The user name or password is wrong.")
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    audit.record(session, user, "login.ok", ip=ip)
    return user
