"""Sessions kept on the server: API bearer tokens (POST /v1/sessions, as ODK Central issues them)
and web sign-ins (the session cookie only names a row here).

Only the SHA-256 of a token or session id is stored (identity/tokens.py); the secret itself exists in the
answer to the sign-in and in the client.

A session ends when it expires, when its holder signs out, and, for every session of a user, when
the user's password changes or is reset, the role changes, or the account is deactivated
(app.services.identity.users.end_user_sessions). A copied cookie or token stops working then.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db import Database
from app.models import ApiSession, User, WebSession, utcnow
from app.services.identity import signin, tokens
from app.services.identity import users as user_service

LIFETIME = timedelta(hours=24)  # API tokens, as Central
WEB_LIFETIME = timedelta(hours=24)  # a web sign-in; closing the browser ends it earlier (session cookie)


def create_session(db: Database, username: str, password: str, ip: str) -> tuple[ApiSession, str]:
    """Sign in for an API token (throttled: signin.Throttled 429, signin.WrongPassword 401): the stored row
    and the token (only its digest is stored)."""
    user = signin.verify(db, username, ip, lambda u: user_service.password_matches(u, password), channel="api",
                         audit_success=True)
    now = utcnow()
    with db.write() as session:
        token = secrets.token_urlsafe(48)[:64]
        row = ApiSession(token_hash=tokens.digest(token), user_id=user.id, created_at=now,
                         expires_at=now + LIFETIME)
        session.add(row)
        session.execute(delete(ApiSession).where(ApiSession.expires_at < now))
    return row, token


def user_for_session(session: Session, token: str) -> User | None:
    row = session.scalar(select(ApiSession).where(ApiSession.token_hash == tokens.digest(token)))
    if row is None or not tokens.same(row.token_hash, token) or row.expires_at < utcnow():
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.active else None


def end_session(session: Session, token: str, by: User) -> bool:
    """End an API session: one's own, or (an administrator) anyone's. False: no such session for `by`."""
    stmt = delete(ApiSession).where(ApiSession.token_hash == tokens.digest(token))
    if by.role != "admin":
        stmt = stmt.where(ApiSession.user_id == by.id)
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def start_web_session(session: Session, user_id: int) -> str:
    """A new web session for the user; its id goes into the (signed) session cookie."""
    now = utcnow()
    sid = secrets.token_urlsafe(32)
    session.add(WebSession(id=tokens.digest(sid), user_id=user_id, created_at=now, expires_at=now + WEB_LIFETIME))
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    return sid


def user_for_web_session(session: Session, user_id: int, sid: str) -> User | None:
    """The active user signed in as web session `sid`, or None (signed out, expired, ended)."""
    user = session.execute(
        select(User).join(WebSession, WebSession.user_id == User.id)
        .where(WebSession.id == tokens.digest(sid), WebSession.user_id == user_id, WebSession.expires_at > utcnow())
    ).scalar_one_or_none()
    return user if user is not None and user.active else None


def end_web_session(session: Session, sid: str) -> None:
    session.execute(delete(WebSession).where(WebSession.id == tokens.digest(sid)))
