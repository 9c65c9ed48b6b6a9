"""Submissions through Central's REST API: create, attachments, edit, review, comments, versions, audits.

Writes take the same ingest path as ODK Collect's OpenRosa POST (submissions.receive_submission),
so parsing, validation, blob durability and the entity rules are the same:

- create (`POST .../submissions`, XML body) is a submission without files; an instanceID already on
  the server answers 409.3 as Central (the OpenRosa POST acknowledges an identical resend instead);
- an attachment upload (`POST .../submissions/<iid>/attachments/<name>`) is an identical resend of
  the current version's XML carrying that one file, exactly like the next part of a submission
  Collect split up — so only files the XML refers to are taken;
- an edit (`PUT .../submissions/<iid>`) must carry meta/deprecatedID (400.19) naming the current
  version (409.9), then it is received like Collect's edit.

Who may write: admins and coordinators (any form), collectors (forms they may fill; afterwards only
their own submissions). Reading, reviewing and commenting: admins, coordinators and managers, in
their regions (records.get_record: 404 outside them). Every action is audited.
"""
from __future__ import annotations

from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.central.odata import REVIEW_FROM_CENTRAL
from app.central.shapes import iso, submission_json
from app.db import Database
from app.errors import Problem
from app.models import AuditEvent, Form, Submission, SubmissionComment, SubmissionVersion, User
from app.services import access, audit
from app.services import forms as form_service
from app.services.regions import of_answers as region_of
from app.services.submissions import records
from app.services.submissions.ingest import IncomingFile, receive_submission
from forms import SubmissionXMLError, extract, parse_submission
from storage import BlobStore


def target(xml_form_id: str, instance_id: str) -> str:
    return f"submission:{xml_form_id}/{instance_id}"


def _form(session: Session, user: User, project_id: int, xml_form_id: str) -> Form:
    if project_id != user.project_id or not user.active:
        raise problems.NOT_FOUND()
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None or form.current_version_id is None:
        raise problems.NOT_FOUND()
    return form


def find_writable(session: Session, user: User, project_id: int, xml_form_id: str,
                  instance_id: str) -> tuple[Submission, SubmissionVersion]:
    """The submission the caller may change: a reader's (in their regions) or a collector's own."""
    if user.role in access.READERS:
        return records.get_record(session, project_id, user, xml_form_id, instance_id)
    form = _form(session, user, project_id, xml_form_id)
    sub = session.scalar(select(Submission).where(Submission.form_id == form.id, Submission.instance_id == instance_id,
                                                  Submission.deleted_at.is_(None)))
    if sub is None or sub.submitter_id != user.id or user.role != "collector" or sub.current_version_id is None:
        raise problems.NO_SUCH_SUBMISSION_OF_YOURS()
    sv = session.get(SubmissionVersion, sub.current_version_id)
    assert sv is not None
    return sub, sv


def _parse(xml: bytes, max_bytes: int) -> tuple[Any, Any]:
    try:
        return parse_submission(xml, max_bytes=max_bytes)
    except SubmissionXMLError as err:
        kind = problems.SUBMISSION_XML_TOO_LARGE if err.code == "too_large" else problems.SUBMISSION_XML_UNREADABLE
        raise kind(detail=err.message) from err


def _envelope(xml: bytes, max_bytes: int) -> Any:
    return _parse(xml, max_bytes)[0]


def _check_region(db: Database, user: User, project_id: int, xml_form_id: str, xml: bytes, max_bytes: int) -> None:
    """A coordinator writes only records of their regions (the region the answers name); admins anywhere;
    collectors as through ODK Collect."""
    if user.role != "coordinator":
        return
    envelope, tree = _parse(xml, max_bytes)
    with db.session() as session:
        form = _form(session, user, project_id, xml_form_id)
        schema = form_service.schema_of(form_service.get_version(session, form, envelope.version))
    region = region_of(extract(tree, schema).values)
    if region is not None and not access.sees_region(user, region):
        raise problems.RECORD_REGION_OUTSIDE(region=region)


def _same_form(envelope: Any, xml_form_id: str) -> None:
    if envelope.form_id != xml_form_id:
        raise problems.SUBMISSION_OF_ANOTHER_FORM(form_id=envelope.form_id, xml_form_id=xml_form_id)


def _exists(instance_id: str) -> Problem:
    return problems.SUBMISSION_EXISTS(instance_id=instance_id).add(fields=["instanceId"], values=[instance_id])


def create(db: Database, store: BlobStore, user: User, project_id: int, xml_form_id: str, xml: bytes, *,
           device_id: str | None, user_agent: str | None, max_bytes: int, ip: str = "") -> dict[str, Any]:
    """REST create: the XML without files (they follow as attachment uploads)."""
    if user.role not in ("admin", "coordinator", "collector"):
        raise problems.ROLE_MAY_NOT_CREATE_SUBMISSIONS()
    with db.session() as session:
        _form(session, user, project_id, xml_form_id)
    envelope = _envelope(xml, max_bytes)
    _same_form(envelope, xml_form_id)
    if envelope.deprecated_id:
        raise problems.EDIT_SENT_AS_NEW()
    _check_region(db, user, project_id, xml_form_id, xml, max_bytes)
    try:
        result = receive_submission(db, store, project_id=project_id, user=user, xml=xml, files=[],
                                    device_id=device_id, user_agent=user_agent, max_xml_bytes=max_bytes,
                                    max_file_bytes=max_bytes)
    except Problem as problem:
        if problem.code != problems.INSTANCE_ID_CONFLICT.code:  # OpenRosa's; through REST Central says 409.3
            raise
        raise _exists(envelope.instance_id or "") from None
    if result.status == "duplicate":
        raise _exists(result.instance_id)
    with db.write() as session:
        audit.record(session, user, "submission.create", target=target(xml_form_id, result.instance_id), ip=ip,
                     via="api")
        sub = session.get(Submission, result.submission_id)
        assert sub is not None and sub.current_version_id is not None
        sv = session.get(SubmissionVersion, sub.current_version_id)
        assert sv is not None
        return submission_json(sub, sv, records.InstanceNames(session, user, project_id))


def upload_attachment(db: Database, store: BlobStore, user: User, project_id: int, xml_form_id: str,
                      instance_id: str, name: str, stream: IO[bytes], content_type: str | None, *,
                      max_bytes: int, ip: str = "") -> None:
    """One file of the current version, as the next part of a split submission would bring it."""
    with db.session() as session:
        sub, sv = find_writable(session, user, project_id, xml_form_id, instance_id)
        if not any(a.name == name for a in sv.attachments):
            expected = ", ".join(a.name for a in sv.attachments) or "none"
            raise problems.SUBMISSION_DOES_NOT_NAME_FILE(name=name, expected=expected)
        xml = sv.xml
    # centralpy sends */*, pyodk application/octet-stream for unknown types: then guess from the name
    ctype = content_type if content_type and "*" not in content_type and content_type != "application/octet-stream" \
        else None
    receive_submission(db, store, project_id=project_id, user=user, xml=xml,
                       files=[IncomingFile(name, stream, ctype)], max_xml_bytes=max(len(xml), 1),
                       max_file_bytes=max_bytes)
    with db.write() as session:
        audit.record(session, user, "submission.attachment", target=target(xml_form_id, instance_id), ip=ip,
                     name=name)


def edit(db: Database, store: BlobStore, user: User, project_id: int, xml_form_id: str, instance_id: str,
         xml: bytes, *, user_agent: str | None, max_bytes: int, ip: str = "") -> dict[str, Any]:
    """REST edit (Central's PUT): a new version replacing the current one."""
    envelope = _envelope(xml, max_bytes)
    _same_form(envelope, xml_form_id)
    if not envelope.deprecated_id:
        raise problems.EDIT_WITHOUT_DEPRECATED_ID()
    with db.session() as session:
        _sub, current = find_writable(session, user, project_id, xml_form_id, instance_id)
        if envelope.deprecated_id != current.instance_id:
            raise problems.EDIT_NOT_OF_CURRENT(deprecated_id=envelope.deprecated_id, instance_id=current.instance_id)
    _check_region(db, user, project_id, xml_form_id, xml, max_bytes)
    result = receive_submission(db, store, project_id=project_id, user=user, xml=xml, files=[],
                                user_agent=user_agent, max_xml_bytes=max_bytes, max_file_bytes=max_bytes,)
    if result.status != "edited":
        raise problems.EDIT_INSTANCE_ID_EXISTS(instance_id=envelope.instance_id)
    with db.write() as session:
        audit.record(session, user, "submission.update", target=target(xml_form_id, instance_id), ip=ip,
                     version=envelope.instance_id)
        sub = session.get(Submission, result.submission_id)
        assert sub is not None and sub.current_version_id is not None
        sv = session.get(SubmissionVersion, sub.current_version_id)
        assert sv is not None
        return submission_json(sub, sv, records.InstanceNames(session, user, project_id))


def set_review(session: Session, user: User, project_id: int, xml_form_id: str, instance_id: str,
               body: dict[str, Any], ip: str = "") -> dict[str, Any]:
    """PATCH {"reviewState": "hasIssues" | "approved" | "rejected"} (records.review does the rest)."""
    raw = body.get("reviewState")
    state = REVIEW_FROM_CENTRAL.get(str(raw)) if raw is not None else "received"
    if state is None or state == "edited":
        raise problems.UNKNOWN_REVIEW_STATE_API(raw=raw)
    sub, _ = records.get_record(session, project_id, user, xml_form_id, instance_id)
    if sub.review_state != state:  # setting the state it has is a no-op, as in Central
        sub = records.review(session, project_id, user, xml_form_id, instance_id, state=state, ip=ip)
    sv = session.get(SubmissionVersion, sub.current_version_id)
    assert sv is not None
    return submission_json(sub, sv, records.InstanceNames(session, user, project_id))


def comment_json(c: SubmissionComment) -> dict[str, Any]:
    return {"body": c.body, "actorId": c.user_id, "createdAt": iso(c.created_at)}


def list_comments(session: Session, user: User, project_id: int, xml_form_id: str,
                  instance_id: str) -> list[dict[str, Any]]:
    sub, _ = records.get_record(session, project_id, user, xml_form_id, instance_id)
    rows = session.scalars(select(SubmissionComment).where(SubmissionComment.submission_id == sub.id,
                                                           SubmissionComment.body != "")
                           .order_by(SubmissionComment.id.desc()))
    return [comment_json(c) for c in rows]


def add_comment(session: Session, user: User, project_id: int, xml_form_id: str, instance_id: str,
                body: dict[str, Any], ip: str = "") -> dict[str, Any]:
    text = body.get("body")
    if not isinstance(text, str) or not text.strip():
        raise problems.COMMENT_BODY_MISSING()
    sub = records.review(session, project_id, user, xml_form_id, instance_id, comment=text, ip=ip)
    session.flush()
    c = session.scalar(select(SubmissionComment).where(SubmissionComment.submission_id == sub.id)
                       .order_by(SubmissionComment.id.desc()).limit(1))
    assert c is not None
    return comment_json(c)


def version_json(sv: SubmissionVersion, sub: Submission, names: records.InstanceNames) -> dict[str, Any]:
    return {"instanceId": sv.instance_id, "instanceName": names(sv), "submitterId": sv.submitter_id,
            "deviceId": sub.device_id, "userAgent": sv.user_agent, "createdAt": iso(sv.received_at),
            "current": sv.current, "deprecatedId": sv.deprecated_id}


def versions(session: Session, user: User, project_id: int, xml_form_id: str,
             instance_id: str) -> list[dict[str, Any]]:
    sub, _ = records.get_record(session, project_id, user, xml_form_id, instance_id)
    rows = session.scalars(select(SubmissionVersion).where(SubmissionVersion.submission_id == sub.id)
                           .order_by(SubmissionVersion.id.desc()))
    names = records.InstanceNames(session, user, project_id)
    return [version_json(v, sub, names) for v in rows]


def get_version(session: Session, user: User, project_id: int, xml_form_id: str, instance_id: str,
                version_id: str | None) -> tuple[Submission, SubmissionVersion]:
    sub, current = records.get_record(session, project_id, user, xml_form_id, instance_id)
    if not version_id or version_id == current.instance_id:
        return sub, current
    sv = session.scalar(select(SubmissionVersion).where(SubmissionVersion.submission_id == sub.id,
                                                        SubmissionVersion.instance_id == version_id))
    if sv is None:
        raise problems.NO_SUCH_SUBMISSION_VERSION()
    return sub, sv


def audits(session: Session, user: User, project_id: int, xml_form_id: str, instance_id: str) -> list[dict[str, Any]]:
    """The audit log of one submission, newest first, in Central's shape."""
    sub, _ = records.get_record(session, project_id, user, xml_form_id, instance_id)
    rows = session.scalars(select(AuditEvent).where(AuditEvent.target == target(xml_form_id, sub.instance_id))
                           .order_by(AuditEvent.id.desc()).limit(1000))
    return [{"actorId": e.user_id, "actor": {"id": e.user_id, "displayName": e.username} if e.user_id else None,
             "action": e.action, "acteeId": sub.instance_id, "details": e.details or {}, "loggedAt": iso(e.at)}
            for e in rows]
