"""API sessions: bearer tokens as ODK Central issues them (POST /v1/sessions)."""
from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import Problem
from app.models import ApiSession, User, utcnow

from . import users as user_service

LIFETIME = timedelta(hours=24)


def create_session(session: Session, username: str, password: str) -> ApiSession:
    user = user_service.check_password(session, username, password)
    if user is None:
        raise Problem(401, "401.2", "Could not authenticate with the provided credentials.")
    now = utcnow()
    row = ApiSession(token=secrets.token_urlsafe(48)[:64], user_id=user.id, created_at=now, expires_at=now + LIFETIME)
    session.add(row)
    session.execute(delete(ApiSession).where(ApiSession.expires_at < now))
    session.flush()
    return row


def user_for_session(session: Session, token: str) -> User | None:
    row = session.scalar(select(ApiSession).where(ApiSession.token == token))
    if row is None or row.expires_at < utcnow():
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.active else None


def end_session(session: Session, token: str) -> bool:
    return bool(session.execute(delete(ApiSession).where(ApiSession.token == token)).rowcount)  # type: ignore[attr-defined]
