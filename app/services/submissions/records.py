"""Reading and reviewing submissions (records) with role and region checks.

Lists use keyset pagination: rows come newest first by (created_at, id), the page's last key
is passed on in the URL and the next page starts strictly below it. That walks the index
ix_submission_form_created_id and costs the same on page 1 and page 10 000; no OFFSET and no
COUNT(*) over the table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import literal, select, tuple_
from sqlalchemy.orm import Session

from app import problems
from app.models import (
    REVIEW_STATES,
    Form,
    FormVersion,
    Submission,
    SubmissionAttachment,
    SubmissionComment,
    SubmissionRepeatRow,
    SubmissionVersion,
    User,
)
from app.models.base import UTCDateTime, utcnow
from app.services import access, audit, regions
from app.services.answers import LOCAL_TZ
from app.services.forms import encryption, schema_of
from forms import FormSchema
from forms.sensitivity import sensitive_paths

# Tibet keeps Beijing time (UTC+8, no daylight saving): dates typed in filters and dates shown
# on pages are local calendar dates.
SETTABLE_STATES = ("received", "has_issues", "approved", "rejected")
assert set(SETTABLE_STATES) <= set(REVIEW_STATES)
MAX_COMMENT = 4000


def local_day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=LOCAL_TZ).astimezone(UTC)


def visible(user: User, project_id: int) -> Any:
    """SQL condition: the user may see the submission (app.services.access.submission_filter)."""
    return access.submission_filter(user, project_id)


def get_record(session: Session, project_id: int, user: User, xml_form_id: str, instance_id: str
               ) -> tuple[Submission, SubmissionVersion]:
    """A submission by (form, instanceID), or 404 — also outside the user's regions."""
    access.require_reader(user)
    row = session.execute(
        select(Submission, SubmissionVersion)
        .join(Form, Form.id == Submission.form_id)
        .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
        .where(Form.project_id == project_id, Form.xml_form_id == xml_form_id,
               Submission.instance_id == instance_id, Submission.deleted_at.is_(None))).first()
    if row is None or not access.sees_submission(session, user, project_id, row[0]):
        raise problems.NO_SUCH_SUBMISSION_IN_REGIONS()
    return row[0], row[1]


def _version_of(session: Session, sub: Submission, current: SubmissionVersion,
                version: str | None) -> SubmissionVersion:
    """The submission's version with that instanceID (an earlier edit), or the current one."""
    if not version or version == current.instance_id:
        return current
    sv = session.scalar(select(SubmissionVersion).where(SubmissionVersion.submission_id == sub.id,
                                                        SubmissionVersion.instance_id == version))
    if sv is None:
        raise problems.NO_SUCH_SUBMISSION_VERSION()
    return sv


def withheld_files(session: Session, project_id: int, user: User, sv: SubmissionVersion) -> set[str]:
    """Files of this version answered to sensitive questions that the user may not open."""
    red = access.Redactor(session, user, project_id)
    if red.show:
        return set()
    fv = session.get(FormVersion, sv.form_version_id)
    assert fv is not None
    return red.withheld_files(schema_of(fv), sv.data or {}, sv.repeat_rows)


def get_attachment(session: Session, project_id: int, user: User, xml_form_id: str, instance_id: str,
                   name: str, *, version: str | None = None) -> SubmissionAttachment:
    sub, current = get_record(session, project_id, user, xml_form_id, instance_id)
    sv = _version_of(session, sub, current, version)
    att = next((a for a in sv.attachments if a.name == name), None)
    if att is not None and name in withheld_files(session, project_id, user, sv):
        raise problems.SENSITIVE_FILE(name=name)
    if att is None or att.blob_key is None:
        raise problems.SUBMISSION_FILE_MISSING(name=name)
    return att


# ---------------------------------------------------------------------------------------------
# Lists


@dataclass
class FormInfo:
    xml_form_id: str
    title: str
    state: str


def list_forms(session: Session, project_id: int, user: User) -> list[FormInfo]:
    access.require_reader(user)
    rows = session.scalars(select(Form).where(Form.project_id == project_id).order_by(Form.xml_form_id))
    return [FormInfo(f.xml_form_id, f.current_version.title if f.current_version else f.xml_form_id, f.state)
            for f in rows]


def get_form_info(session: Session, project_id: int, user: User, xml_form_id: str) -> FormInfo:
    access.require_reader(user)
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None:
        raise problems.NO_SUCH_FORM()
    return FormInfo(form.xml_form_id, form.current_version.title if form.current_version else form.xml_form_id,
                    form.state)


@dataclass
class SubmissionRow:
    id: int
    instance_id: str
    instance_name: str | None
    created_at: datetime
    region_code: str | None
    submitter: str | None
    review_state: str
    edited: bool
    entity_uuid: str | None

    @property
    def key(self) -> str:
        return encode_key(self.created_at, self.id)


def encode_key(at: datetime, row_id: int) -> str:
    """The page key of a row: microseconds since the epoch (UTC) and the id, e.g. 1764380000123456.42."""
    micros = int((at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    return f"{micros}.{row_id}"


def decode_key(key: str) -> tuple[datetime, int] | None:
    micros, _, row_id = key.partition(".")
    if not micros.lstrip("-").isdigit() or not row_id.isdigit():
        return None
    try:
        at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
    except OverflowError:
        return None
    return at, int(row_id)


@dataclass
class SubmissionFilters:
    received_from: date | None = None
    received_to: date | None = None  # inclusive
    region: str = ""
    review_state: str = ""
    submitter: str = ""


def list_submissions(session: Session, project_id: int, user: User, xml_form_id: str,
                     filters: SubmissionFilters | None = None, *, after: str = "",
                     limit: int = 50) -> tuple[list[SubmissionRow], str | None]:
    """One page of a form's submissions, newest first, and the key of the next page (None: last page)."""
    access.require_reader(user)
    f = filters or SubmissionFilters()
    form_pk = session.scalar(select(Form.id).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form_pk is None:
        raise problems.NO_SUCH_FORM()
    q = (select(Submission, SubmissionVersion.instance_name, SubmissionVersion.deprecated_id, User.username,
                SubmissionVersion.form_version_id)
         .join(SubmissionVersion, SubmissionVersion.id == Submission.current_version_id)
         .outerjoin(User, User.id == Submission.submitter_id)
         .where(Submission.form_id == form_pk, Submission.deleted_at.is_(None),
                visible(user, project_id)))
    if f.received_from:
        q = q.where(Submission.created_at >= local_day_start(f.received_from))
    if f.received_to:
        q = q.where(Submission.created_at < local_day_start(f.received_to + timedelta(days=1)))
    if f.region:
        q = q.where(Submission.region_code.startswith(f.region, autoescape=True))
    if f.review_state:
        q = q.where(Submission.review_state == f.review_state)
    if f.submitter:
        uid = session.scalar(select(User.id).where(User.username == f.submitter.strip()))
        if uid is None:
            return [], None
        q = q.where(Submission.submitter_id == uid)
    key = decode_key(after) if after else None
    if key is not None:
        q = q.where(tuple_(Submission.created_at, Submission.id)
                    < tuple_(literal(key[0], UTCDateTime()), literal(key[1])))
    q = q.order_by(Submission.created_at.desc(), Submission.id.desc()).limit(limit + 1)
    red = access.Redactor(session, user, project_id)
    schemas: dict[int, FormSchema] = {}

    def shown(name: str | None, fv_id: int) -> str | None:
        if red.show or not name:
            return name
        if fv_id not in schemas:
            fv = session.get(FormVersion, fv_id)
            assert fv is not None
            schemas[fv_id] = schema_of(fv)
        return red.instance_name(schemas[fv_id], name)

    rows = [SubmissionRow(id=s.id, instance_id=s.instance_id, instance_name=shown(name, fv_id),
                          created_at=s.created_at, region_code=s.region_code, submitter=username,
                          review_state=s.review_state, edited=dep is not None, entity_uuid=s.entity_uuid)
            for s, name, dep, username, fv_id in session.execute(q)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].key if more and rows else None)


# ---------------------------------------------------------------------------------------------
# One record, laid out by its form


def _display(field: Any, value: Any, files: dict[str, SubmissionAttachment]) -> dict[str, Any]:
    """How one answer is shown: plain text, chosen options (labels), a place, a geopoint, or a file."""
    if value == access.MASK:
        return {"kind": "masked", "text": access.MASK}
    if field is not None and field.type in ("select1", "select") and field.choices:
        chosen = value if isinstance(value, list) else [value]
        labels = {c.value: c.labels for c in field.choices}
        return {"kind": "choices", "choices": [{"value": str(v), "labels": labels.get(str(v), {})} for v in chosen]}
    if isinstance(value, dict) and value.get("type") == "Point":
        coords = list(value.get("coordinates") or [])
        acc = (value.get("properties") or {}).get("accuracy")
        return {"kind": "geo", "lat": coords[1] if len(coords) > 1 else None, "lon": coords[0] if coords else None,
                "alt": coords[2] if len(coords) > 2 else None, "accuracy": acc}
    if isinstance(value, dict) and value.get("type") in ("LineString", "Polygon"):
        return {"kind": "text", "text": f"{value['type']}: {len(str(value.get('coordinates')))} …"}
    if field is not None and field.itemset_file == regions.FORM_CSV and isinstance(value, str) and regions.name(value):
        return {"kind": "place", "name": regions.name(value), "code": value}  # a place picked from regions.csv
    if field is not None and field.type == "binary" and isinstance(value, str):
        att = files.get(value)
        ctype = (att.content_type if att else None) or ""
        image = ctype.startswith("image/") or (field.mediatype or "").startswith("image") or \
            value.lower().endswith((".jpg", ".jpeg", ".png", ".gif", ".webp"))
        return {"kind": "file", "name": value, "present": bool(att and att.blob_key), "image": image}
    if isinstance(value, list):
        return {"kind": "text", "text": " ".join(str(v) for v in value)}
    return {"kind": "text", "text": str(value)}


# instance('children')/root/item[name=${child}]/status: a value read from the child's list
_READS_PROPERTY = re.compile(r"^\s*instance\('[^']+'\)/root/item\[[^\]]*\]/(\w+)\s*$")


def _property_read(calculate: str | None) -> str | None:
    """The entity property a calculation only reads from a list (its value is that property's code)."""
    found = _READS_PROPERTY.match(calculate or "")
    return found.group(1) if found and found.group(1) not in ("name", "label") else None


def _option_words(schema: FormSchema) -> dict[str, dict[str, str]]:
    """Option codes that mean one thing in this form (every list naming the code labels it alike)."""
    seen: dict[str, list[dict[str, str]]] = {}
    for f in schema.fields:
        for c in f.choices:
            if c.labels and c.labels not in seen.setdefault(c.value, []):
                seen[c.value].append(c.labels)
    return {code: labels[0] for code, labels in seen.items() if len(labels) == 1}


def _is_note(f: Any) -> bool:
    """A note: read-only text shown to the person filling in, never an answer."""
    return f.readonly and f.calculate is None and f.control == "input"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def layout(schema: FormSchema, values: dict[str, Any], repeat_rows: list[SubmissionRepeatRow],
           files: dict[str, SubmissionAttachment], entity_uuid: str | None = None) -> list[dict[str, Any]]:
    """The answers in form order: group headings, answers (label + display), repeats as tables.

    Labels stay dicts of {language: text}; the page picks the UI language.
    """
    base = f"/{schema.root}/"
    rows_by_repeat: dict[str, list[SubmissionRepeatRow]] = {}
    for r in repeat_rows:
        rows_by_repeat.setdefault(r.repeat, []).append(r)
    ordinal_of = {r.id: r.ordinal for r in repeat_rows}

    def answered_under(prefix: str) -> bool:
        rel = prefix[len(base):] + "/"
        return any(k.startswith(rel) and not _empty(v) for k, v in values.items()) or \
            any(p.startswith(prefix + "/") for p in rows_by_repeat)

    words = _option_words(schema)
    items: list[dict[str, Any]] = []
    for f in schema.fields:
        if f.meta or not f.path.startswith(base):
            continue
        depth = f.path[len(base):].count("/")
        if f.type == "repeat":
            rows = rows_by_repeat.get(f.path, [])
            if not rows:
                continue
            # a column per question answered in some row (notes hold no answer; unanswered columns would
            # only squeeze the others on a phone)
            cols = [c for c in schema.fields if c.repeat == f.path and c.type not in ("group", "repeat")
                    and not _is_note(c)
                    and any(not _empty(r.data.get(c.path[len(f.path) + 1:])) for r in rows)]
            table_rows = []
            for r in rows:
                cells = []
                for c in cols:
                    v = r.data.get(c.path[len(f.path) + 1:])
                    cells.append(None if _empty(v) else _display(c, v, files))
                table_rows.append({"ordinal": r.ordinal, "parent": ordinal_of.get(r.parent_id or 0), "cells": cells})
            items.append({"kind": "repeat", "labels": f.labels, "name": f.name, "depth": depth,
                          "nested": f.repeat is not None,
                          "columns": [{"labels": c.labels, "name": c.name} for c in cols], "rows": table_rows})
            continue
        if f.repeat is not None:
            continue  # a column of its repeat's table
        if f.type == "group":
            if answered_under(f.path):
                items.append({"kind": "group", "labels": f.labels, "name": f.name, "depth": depth})
            continue
        value = values.get(f.path[len(base):])
        if _empty(value):
            continue
        shown = _display(f, value, files)
        if entity_uuid and isinstance(value, str) and value.lower() == entity_uuid:
            shown["child"] = entity_uuid
        # A value no one was asked for (the form works it out or the phone records it) is set apart from the
        # answers, and said in words:
        # `prop` names the child's property it saves or reads (the page has words for those), else a code
        # that names one option in every list of the form gets that option's labels.
        calculated = not f.labels  # worked out (calculate) or recorded by the phone (start, username …)
        prop = f.saveto or _property_read(f.calculate)
        if calculated and shown["kind"] == "text":
            if prop:
                shown["prop"] = prop
            elif shown["text"] in words:
                shown = {"kind": "choices", "choices": [{"value": shown["text"], "labels": words[shown["text"]]}]}
            elif shown["text"] in ("yes", "no"):  # a flag the form works out ('yes' means different things)
                shown["yes"] = shown["text"] == "yes"
        items.append({"kind": "answer", "labels": f.labels, "name": f.name, "depth": depth, "value": shown,
                      "calculated": calculated, "prop": prop})
    return items


def _masked_row(red: access.Redactor, schema: FormSchema, row: SubmissionRepeatRow) -> SubmissionRepeatRow:
    """A detached copy of the repeat row with sensitive values masked (the stored row is untouched)."""
    if red.show:
        return row
    copy = SubmissionRepeatRow(repeat=row.repeat, ordinal=row.ordinal, data=red.values(schema, row.data or {},
                                                                                         row.repeat))
    copy.id, copy.parent_id = row.id, row.parent_id
    return copy


@dataclass
class VersionRow:
    """One version of a record: the original, then each edit."""

    instance_id: str
    received_at: datetime
    current: bool
    deprecated_id: str | None
    submitter: str | None
    form_version: str
    shown: bool  # the version this page shows


@dataclass
class CommentRow:
    body: str
    review_state: str | None
    at: datetime
    user: str | None


@dataclass
class RecordPage:
    """Everything a record's page shows, laid out by its form and already redacted for the reader:
    sensitive answers masked, their files withheld (app.services.access.redact)."""

    form_id: str
    form_title: str
    form_version: str
    instance_id: str
    version_instance_id: str
    is_current: bool
    instance_name: str | None
    received_at: datetime
    version_received_at: datetime
    submitter: str | None
    region_code: str | None
    review_state: str
    entity_uuid: str | None
    encryption_status: str | None  # notDecrypted | missingEncryptedFormData | None
    answers: list[dict[str, Any]]  # group headings, answers, repeats as tables (layout())
    attachments: list[dict[str, Any]]
    withheld: list[str]
    unmasked: bool  # identifying answers were shown: audit the view as such
    versions: list[VersionRow]
    comments: list[CommentRow]


class InstanceNames:
    """Records' instance names as one reader may see them (masked where the form builds them from sensitive
    answers: Redactor.instance_name), each version's schema parsed once."""

    def __init__(self, session: Session, user: User, project_id: int) -> None:
        self.session, self.red = session, access.Redactor(session, user, project_id)
        self._schemas: dict[int, FormSchema] = {}

    def __call__(self, sv: SubmissionVersion) -> str | None:
        if self.red.show or not sv.instance_name:
            return sv.instance_name
        if sv.form_version_id not in self._schemas:
            fv = self.session.get(FormVersion, sv.form_version_id)
            assert fv is not None
            self._schemas[sv.form_version_id] = schema_of(fv)
        return self.red.instance_name(self._schemas[sv.form_version_id], sv.instance_name)


def record_detail(session: Session, project_id: int, user: User, xml_form_id: str, instance_id: str,
                  version: str | None = None) -> RecordPage:
    """Everything the submission page shows: answers by the form, versions, review and comments."""
    sub, current = get_record(session, project_id, user, xml_form_id, instance_id)
    sv = _version_of(session, sub, current, version)
    fv = session.get(FormVersion, sv.form_version_id)
    assert fv is not None
    schema = schema_of(fv)
    red = access.Redactor(session, user, project_id)
    withheld = red.withheld_files(schema, sv.data or {}, sv.repeat_rows)
    files = {a.name: a for a in sv.attachments if a.name not in withheld}
    values = red.values(schema, sv.data or {})
    repeat_rows = [_masked_row(red, schema, r) for r in sv.repeat_rows]
    comment_rows = list(session.scalars(select(SubmissionComment).where(SubmissionComment.submission_id == sub.id)
                                        .order_by(SubmissionComment.id)))
    version_rows = list(session.execute(
        select(SubmissionVersion, FormVersion.version)
        .join(FormVersion, FormVersion.id == SubmissionVersion.form_version_id)
        .where(SubmissionVersion.submission_id == sub.id).order_by(SubmissionVersion.id)))
    user_ids = {sub.submitter_id} | {c.user_id for c in comment_rows} | {v.submitter_id for v, _ in version_rows}
    names: dict[int | None, str] = {uid: name for uid, name in session.execute(
        select(User.id, User.username).where(User.id.in_({u for u in user_ids if u is not None})))}
    return RecordPage(
        form_id=xml_form_id, form_title=fv.title, form_version=fv.version, instance_id=sub.instance_id,
        version_instance_id=sv.instance_id, is_current=sv.id == current.id,
        instance_name=red.instance_name(schema, sv.instance_name),
        received_at=sub.created_at, version_received_at=sv.received_at, submitter=names.get(sub.submitter_id),
        region_code=sub.region_code, review_state=sub.review_state, entity_uuid=sub.entity_uuid,
        encryption_status=encryption.statuses(session, [sv]).get(sv.id),
        answers=layout(schema, values, repeat_rows, files, sub.entity_uuid),
        attachments=[{"name": a.name, "present": a.blob_key is not None, "size": a.size,
                      "content_type": a.content_type} for a in sv.attachments if a.name not in withheld],
        withheld=sorted(withheld), unmasked=red.show and bool(sensitive_paths(schema)),
        versions=[VersionRow(v.instance_id, v.received_at, v.id == current.id, v.deprecated_id,
                             names.get(v.submitter_id), fvv, v.id == sv.id) for v, fvv in version_rows],
        comments=[CommentRow(c.body, c.review_state, c.created_at, names.get(c.user_id)) for c in comment_rows])


def review(session: Session, project_id: int, user: User, xml_form_id: str, instance_id: str, *,
           state: str = "", comment: str = "", ip: str = "") -> Submission:
    """Set the review state and/or add a comment; both are audited (submission.review)."""
    sub, _ = get_record(session, project_id, user, xml_form_id, instance_id)
    state = state.strip()
    comment = comment.strip()
    if state and state not in SETTABLE_STATES:
        raise problems.REVIEW_STATE_UNKNOWN()
    if len(comment) > MAX_COMMENT:
        raise problems.COMMENT_TOO_LONG()
    if not comment and (not state or state == sub.review_state):
        raise problems.REVIEW_NOTHING_TO_SAVE()
    previous = sub.review_state
    changed = bool(state) and state != previous
    if changed:
        sub.review_state = state
        sub.updated_at = utcnow()
    if comment or changed:
        session.add(SubmissionComment(submission_id=sub.id, user_id=user.id, body=comment,
                                      review_state=state if changed else None))
    audit.record(session, user, "submission.review", target=f"submission:{xml_form_id}/{instance_id}", ip=ip,
                 previous=previous, state=sub.review_state, comment=bool(comment))
    return sub
