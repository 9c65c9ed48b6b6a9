"""The audit log: record and read who did what, when and from where."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AuditEvent, User

# Every action the log records, with the words the audit page shows for it (translated there). Recording an
# action missing here fails (tests reach every path that records), so the page never shows a bare code.
ACTIONS: dict[str, str] = {
    "login.ok": "Signed in",
    "login.failed": "Sign-in failed",
    "logout": "Signed out",
    "password.change": "Changed own password",
    "form.publish": "Published a form",
    "form.state": "Changed a form's state",
    "form.attachment": "Uploaded a form file",
    "form.draft": "Made a form's draft",
    "form.draft.abandon": "Abandoned a form's draft",
    "form.encrypt": "Turned on a form's encryption",
    "child.view": "Opened a child file",
    "child.transfer": "Moved a child to another village",
    "child.close": "Closed a case",
    "child.reopen": "Reopened a case",
    "child.merge": "Merged two children's files",
    "child.distinct": "Marked two children as different",
    "child.anonymise": "Anonymised a closed file (retention)",
    "retention.run": "Ran the retention of closed files",
    "submission.view": "Opened a submission",
    "submission.review": "Reviewed a submission",
    "submission.create": "Sent a submission through the API",
    "submission.update": "Edited a submission through the API",
    "submission.attachment": "Uploaded a submission's file through the API",
    "submission.web_entry": "Entered a paper form in the browser",
    "submission.web_edit": "Edited a submission in the browser",
    "attachment.download": "Downloaded a file",
    "odata.read": "Read a form's data (OData) with identifying details",
    "geojson.read": "Read a form's locations (GeoJSON) with identifying details",
    "entities.read": "Read the children list with identifying details",
    "entity.create": "Added an entity through the API",
    "entity.update.version": "Changed an entity through the API",
    "entity.update.resolve": "Resolved an entity's conflict",
    "entity.delete": "Deleted an entity",
    "entity.restore": "Restored an entity",
    "entity.bulk.delete": "Deleted several entities",
    "entity.bulk.restore": "Restored several entities",
    "entity.purge": "Purged deleted entities (30 days in the trash)",
    "submission.delete": "Deleted a submission",
    "submission.restore": "Restored a submission",
    "submission.purge": "Purged deleted submissions (30 days in the trash)",
    "dataset.create": "Made an entity list",
    "dataset.update": "Changed an entity list",
    "held.apply": "Applied a held change",
    "held.reject": "Rejected a held change",
    "export.create": "Started an export",
    "export.download": "Downloaded an export",
    "report.download": "Downloaded a report",
    "user.create": "Added a user",
    "user.update": "Changed a user",
    "user.token": "Issued a Collect QR code",
    "user.revoke": "Revoked a Collect QR code",
}


# The words for every detail an event carries (its keyword arguments to record()), shown on the audit page
# (translated there); tests/app/web/test_words.py fails on a detail recorded without words here.
DETAILS: dict[str, str] = {
    "active": "Active", "assigned": "Forms given", "bulk": "Several at once", "channel": "Through",
    "children": "Children", "closed_at": "Closed on", "comment": "Comment", "cutoff": "Closed before",
    "dataset": "Entity list", "decrypted": "Decrypted", "deleted": "Deleted", "direct": "Direct download",
    "display_name": "Full name", "draft": "Draft", "entities": "Entities", "features": "Places",
    "filename": "File", "files": "Files", "filter": "Filter", "force": "Forced", "form": "Form", "format": "Format",
    "forms": "Forms", "from": "From", "held": "Held for review",
    "issued": "Issued", "job": "Export", "key_id": "Key", "kind": "Kind", "md5": "MD5", "merged": "Merged file",
    "name": "File", "new": "New", "new_form": "New form", "note": "Note", "old": "Before", "options": "Options",
    "other": "The other child", "password": "Password", "period": "Period", "previous": "Before",
    "property": "Property", "purpose": "Purpose", "reason": "Reason", "records": "Records", "regions": "Regions",
    "renewed": "Renewed", "replaced": "Replaced", "role": "Role", "rows": "Rows",
    "sees_sensitive": "May see identifying details", "size": "Size",
    "source": "Source", "state": "Review state", "status": "Result", "submission": "Submission",
    "submissions": "Submissions", "table": "Table",
    "test_submissions_discarded": "Test submissions discarded", "to": "To", "tokens": "QR codes",
    "unassigned": "Forms taken away", "unmasked": "Identifying details shown", "values": "Values",
    "version": "Version", "via": "Through", "xml": "XML", "years": "Years",
}


class UnknownAction(ValueError):
    """An audit action without words in ACTIONS (a programming error)."""


def record(session: Session, user: User | None, action: str, target: str = "", ip: str = "",
           username: str | None = None, **details: Any) -> AuditEvent:
    if action not in ACTIONS:
        raise UnknownAction(f"the audit action {action!r} has no words in app.services.audit.ACTIONS")
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
