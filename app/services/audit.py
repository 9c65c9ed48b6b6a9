"""The audit log: record and read who did what, when and from where."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AuditEvent, User

ACTIONS = (
    "login.ok", "login.failed", "logout", "password.change",
    "form.publish", "form.state", "form.attachment", "form.draft", "form.draft.abandon",
    "child.view", "submission.view", "submission.review", "attachment.download", "odata.read", "entities.read",
    "held.apply", "held.reject",
    "export.create", "export.download",
    "user.create", "user.update", "user.token", "user.revoke",
)


def record(session: Session, user: User | None, action: str, target: str = "", ip: str = "",
           username: str | None = None, **details: Any) -> AuditEvent:
    event = AuditEvent(user_id=user.id if user else None, username=username or (user.username if user else ""),
                       action=action, target=target, details=details, ip=ip or "")
    session.add(event)
    return event


def search(session: Session, *, action: str = "", username: str = "", target: str = "",
           since: datetime | None = None, until: datetime | None = None, before_id: int | None = None,
           limit: int = 100) -> list[AuditEvent]:
    """Newest first; pass the last id seen as before_id for the next page."""
    q = select(AuditEvent)
    if action:
        q = q.where(AuditEvent.action.startswith(action, autoescape=True))
    if username:
        q = q.where(AuditEvent.username == username)
    if target:
        q = q.where(AuditEvent.target.contains(target, autoescape=True))
    if since:
        q = q.where(AuditEvent.at >= since)
    if until:
        q = q.where(AuditEvent.at < until)
    if before_id:
        q = q.where(AuditEvent.id < before_id)
    return list(session.scalars(q.order_by(AuditEvent.id.desc()).limit(limit)))


def count(session: Session, action: str) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)) or 0)
