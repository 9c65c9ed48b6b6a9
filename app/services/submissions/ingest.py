"""Receiving submissions from ODK Collect: parse, store blobs, write rows — all or nothing.

Order of work (docs/architecture.md, *A Collect submission, top to bottom*): parse the XML and check
the form → store the expected attachment files in the blob store (durable before anything refers to
them) → one write transaction for the rows. A crash before the commit leaves at most unreferenced
blobs, which `carefile blobs sweep` removes; the phone then retries and gets the same result.

Decisions documented in README ("Submissions"):
- A submission without meta/instanceID is accepted and given the id "sha256:<hash of the XML>",
  so an identical resend is still recognised as the same submission.
- Files the XML does not reference (leftovers in Collect's instance folder) are ignored, never
  stored and never a reason to refuse the submission.
"""
from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import time
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from sqlalchemy import BigInteger, Connection, Table, TextClause, and_, bindparam, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app import problems
from app.db import RETRY_ATTEMPTS, Database, is_retryable, retry_pause
from app.models import (
    Dataset,
    Entity,
    Form,
    FormVersion,
    Submission,
    SubmissionAttachment,
    SubmissionRepeatRow,
    SubmissionVersion,
    User,
    UserRegion,
    loaded_instance,
    utcnow,
)
from app.prepared import Prepared, RawConnection
from app.services import access, events, schemas
from app.services.children import entities as entity_service
from app.services.children import held as held_service
from app.services.children import lean as lean_entities
from app.services.children.store import CHILDREN, lock_dataset
from app.services.forms import lookup as form_lookup
from app.services.regions import of_answers as region_of
from forms import (
    FormSchema,
    SubmissionData,
    SubmissionTree,
    SubmissionXMLError,
    extract,
    extract_encrypted,
    parse_submission,
)
from storage import BlobInfo, BlobStore, BlobTooLarge

log = logging.getLogger(__name__)



@dataclass
class IncomingFile:
    name: str  # multipart field name (Collect uses the file name)
    stream: IO[bytes]
    content_type: str | None = None


@dataclass
class ReceiveResult:
    status: str  # created | duplicate | edited
    submission_id: int
    instance_id: str
    form_id: int
    message: str
    ignored_files: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    held: bool = False  # an effect lies outside the submitter's regions and awaits review (app.services.held)



def _parse(xml: bytes, max_bytes: int) -> tuple[object, object]:
    try:
        return parse_submission(xml, max_bytes=max_bytes)
    except SubmissionXMLError as err:
        kind = problems.SUBMISSION_XML_TOO_LARGE if err.code == "too_large" else problems.SUBMISSION_XML_UNREADABLE
        raise kind(detail=err.message) from err


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..") \
        and not name.startswith(".") and "\x00" not in name and len(name) <= 300


# New submissions (not edits or resends) are written with Core INSERTs (`_insert_new`); False sends them
# through the ORM like every other case (tests compare the rows both paths write).
CORE_INSERTS = True
LEAN_ENTITIES = True  # a new record's plain entity change on a driver connection (app/services/children/lean.py)



@dataclass(frozen=True)
class FormRef:
    """The columns of a form that receiving a submission needs (not the ORM object and its versions)."""

    id: int
    project_id: int
    xml_form_id: str
    state: str


_SEEN = (select(SubmissionVersion.id).where(SubmissionVersion.form_id == Form.id,
                                            SubmissionVersion.instance_id == bindparam("instance_id"))
         .limit(1).scalar_subquery())
# Built and compiled once, run on the driver's cursor (app/prepared.py).
_LOOKUP = Prepared(select(Form.id, Form.project_id, Form.xml_form_id, Form.state, Form.current_version_id,
                  FormVersion.id, FormVersion.sha256, _SEEN.label("seen"))
           .outerjoin(FormVersion, and_(FormVersion.form_id == Form.id, FormVersion.version == bindparam("version")))
           .where(Form.project_id == bindparam("project_id"), Form.xml_form_id == bindparam("xml_form_id")))


def _lookup(session: Session, db: Database, project_id: int, xml_form_id: str, version: str,
            instance_id: str) -> tuple[FormRef, int, FormSchema, bool]:
    """The form, the id and parsed schema of the submitted version, and whether the instanceID is
    already stored — one query (the form's current version, XML and schema are not loaded)."""
    with db.raw_reader() as conn:
        found = _LOOKUP.rows(conn, {"instance_id": instance_id, "version": version, "project_id": project_id,
                                    "xml_form_id": xml_form_id})
    row = found[0] if found else None
    if row is None or row[4] is None:
        form_lookup.get_form(session, project_id, xml_form_id)  # raises the 404
        raise AssertionError("unreachable")
    form = FormRef(row[0], row[1], row[2], row[3])
    version_id, sha256, seen_id = row[5], row[6], row[7]
    if version_id is None:
        form_lookup.get_version(session, session.get_one(Form, form.id), version)  # raises the 404
        raise AssertionError("unreachable")
    schema = schemas.cached(version_id, sha256)
    if schema is None:
        fv = session.get(FormVersion, version_id)
        assert fv is not None
        schema = schemas.schema_of(fv)
    return form, version_id, schema, seen_id is not None


def _may_submit(session: Session, user: User, form: FormRef, via: str, only_form: int | None) -> bool:
    if via == "web":
        return (only_form is None or form.id == only_form) and access.may_enter_on_web(user, form)
    return access.may_fill(session, user, form)


def receive_submission(db: Database, store: BlobStore, *, project_id: int, user: User | None,
                       xml: bytes, files: list[IncomingFile], device_id: str | None = None,
                       user_agent: str | None = None, max_xml_bytes: int = 10 * 1024 * 1024,
                       max_file_bytes: int | None = None, via: str = "phone",
                       only_form: int | None = None) -> ReceiveResult:
    """Store one OpenRosa submission POST (a whole submission or one part of a split one).

    `via` says how it came: "phone" (OpenRosa, or Central's REST API) — the user must be allowed to fill the
    form from a phone (access.may_fill); "web" — the browser's paper entry or edit, allowed to every web role
    that reads care files (access.may_enter_on_web), and only for the form of the page (`only_form`)."""
    envelope, tree = _parse(xml, max_xml_bytes)
    xml_sha = hashlib.sha256(xml).hexdigest()
    instance_id = envelope.instance_id or f"sha256:{xml_sha}"  # type: ignore[attr-defined]
    with db.reader() as session:
        form, version_pk, schema, seen = _lookup(session, db, project_id,
                                                 envelope.form_id, envelope.version,  # type: ignore[attr-defined]
                                                 instance_id)
        if form.state == "closed":
            raise problems.FORM_CLOSED_TO_SUBMISSIONS(xml_form_id=form.xml_form_id)
        if user is not None and not _may_submit(session, user, form, via, only_form):
            raise problems.FORM_NOT_ASSIGNED_SUBMIT(xml_form_id=form.xml_form_id)
        form_pk = form.id
    encrypted = _encrypted(db, tree, user)  # type: ignore[arg-type]
    data: SubmissionData = encrypted[0] if encrypted else extract(tree, schema)  # type: ignore[arg-type]
    for name in data.attachments:
        if not _safe_name(name):
            raise problems.FILE_NAME_NOT_PLAIN(name=name)

    by_name = {f.name: f for f in files}
    ignored = sorted(n for n in by_name if n not in data.attachments)
    stored: dict[str, tuple[BlobInfo, str]] = {}
    for name in data.attachments:
        incoming = by_name.get(name)
        if incoming is None:
            continue
        try:
            info = store.put(incoming.stream, max_size=max_file_bytes)
        except BlobTooLarge as err:
            limit = f" ({max_file_bytes / 1_000_000:g} MB)" if max_file_bytes else ""
            raise problems.SUBMISSION_FILE_TOO_LARGE(name=name, limit=limit) from err
        ctype = incoming.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        stored[name] = (info, ctype)
    if ignored:
        log.info("submission %s: ignored %d unreferenced file(s): %s", instance_id, len(ignored), ignored)

    twin_seen = seen
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            if _plain_new(schema, envelope, twin_seen):
                # The common case: a new record of a form without entities — its rows on a driver connection.
                with db.raw_write(one_statement=one_statement(data)) as conn:
                    result = _insert_new(conn, form_pk, version_pk, user, envelope, data, xml, xml_sha, instance_id,
                                         stored, device_id, user_agent, encrypted[1] if encrypted else None)[0]
                result.ignored_files = ignored
                return result
            if LEAN_ENTITIES and _lean_new(schema, envelope, twin_seen):
                # A new record whose entity change is plain (most registrations and visits): the same way.
                lean = _write_lean(db, project_id, form_pk, version_pk, schema, user, envelope, data, xml, xml_sha,
                                   instance_id, stored, device_id, user_agent,
                                   encrypted[1] if encrypted else None)
                if lean is not None:
                    lean.ignored_files = ignored
                    return lean
            with db.write() as session:
                # A new instanceID needs no second look on the first attempt: the unique constraint
                # catches a concurrent twin, and the retry then takes the duplicate path.
                result = _write(session, project_id, form_pk, version_pk, schema, user, envelope, data, xml, xml_sha,
                                instance_id, stored, device_id, user_agent, known_new=not twin_seen,
                                region_fallback=encrypted[1] if encrypted else None)
            result.ignored_files = ignored
            return result
        except IntegrityError:
            if twin_seen or attempt == RETRY_ATTEMPTS:
                raise
            twin_seen = True  # a concurrent identical POST won the race: the next pass sees its row
        except DBAPIError as err:
            if not is_retryable(err) or attempt == RETRY_ATTEMPTS:
                raise
            log.warning("submission %s: %s, attempt %d of %d; retrying", instance_id, type(err.orig).__name__,
                        attempt, RETRY_ATTEMPTS)
            time.sleep(retry_pause(attempt))
    raise AssertionError("unreachable")


def _plain_new(schema: FormSchema, envelope: object, seen: bool) -> bool:
    """A new record (no instanceID stored yet, not an edit) of a form that declares no entity."""
    return CORE_INSERTS and not seen and not envelope.deprecated_id and schema.entity is None \
        and not schema.entities  # type: ignore[attr-defined]


def _lean_new(schema: FormSchema, envelope: object, seen: bool) -> bool:
    """A new record (no instanceID stored yet, not an edit) whose entity change may be plain."""
    return CORE_INSERTS and not seen and not envelope.deprecated_id \
        and lean_entities.eligible(schema, envelope.entity)  # type: ignore[attr-defined]


class _NotPlain(Exception):
    """The entity change is not a plain one: nothing was written, the full path takes the record."""


def _write_lean(db: Database, project_id: int, form_pk: int, version_pk: int, schema: FormSchema, user: User | None,
                envelope: object, data: SubmissionData, xml: bytes, xml_sha: str, instance_id: str,
                stored: dict[str, tuple[BlobInfo, str]], device_id: str | None, user_agent: str | None,
                region_fallback: str | None) -> ReceiveResult | None:
    """A new record and its plain entity change in one transaction on a driver connection (None: not plain, or a
    writer failed unexpectedly — the caller takes the full path, which records entity errors as events)."""
    try:
        with db.raw_write() as conn:
            change = lean_entities.prepare(conn, db.url_key, project_id, user, schema,
                                           envelope.entity, data)  # type: ignore[attr-defined]
            if change is None:
                raise _NotPlain
            drawn = change.drawn
            deferred: dict[str, Any] = {}
            # PostgreSQL (a record without nested repeats): the record's rows go with the entity's, one statement.
            defer = ((drawn["submission"], drawn["submission_version"]), deferred) \
                if drawn and one_statement(data) else None
            result, row = _insert_new(conn, form_pk, version_pk, user, envelope, data, xml, xml_sha, instance_id,
                                      stored, device_id, user_agent, region_fallback, defer=defer)
            try:
                rows = lean_entities.Rows(conn)
                change.write(rows, row["submission_id"], row["id"])
                rows.flush(record=(_PG_RECORD_GIVEN, deferred) if deferred else None)
            except (IntegrityError, OperationalError):
                raise  # a twin's race, a lost race or a fault: the caller's retries and 503
            except Exception as err:  # e.g. a value the database refuses: the full path records it as an entity error
                log.error("lean entity change of %s failed: %s at %s; taking the full path", instance_id,
                          type(err).__name__, events.where(err))
                raise _NotPlain from err
    except _NotPlain:
        return None
    return result


def _write(session: Session, project_id: int, form_pk: int, version_pk: int, schema: FormSchema,
           user: User | None, envelope: object,
           data: SubmissionData, xml: bytes, xml_sha: str, instance_id: str,
           stored: dict[str, tuple[BlobInfo, str]], device_id: str | None,
           user_agent: str | None, known_new: bool = False, region_fallback: str | None = None) -> ReceiveResult:
    deprecated_id = envelope.deprecated_id  # type: ignore[attr-defined]
    block = envelope.entity  # type: ignore[attr-defined]
    if schema.entity is not None and (deprecated_id or not known_new):
        # docs/architecture.md, *Locks*: the entity list before the rows of a record already stored (an edit, a
        # resend): case work and merges lock the list, then the child, then update the child's records.
        lock_dataset(session, project_id, schema.entity.dataset)
    # FOR UPDATE (PostgreSQL): parts of one split submission, or a resend racing an edit of the same
    # version, take their turn on the version row instead of overwriting each other's files.
    existing = None if known_new else _stored_version(session, form_pk, instance_id)
    if existing is not None:
        return _resend(session, existing, xml_sha, stored, form_pk)

    if CORE_INSERTS and not deprecated_id:
        # The common case (a new record): plain INSERTs, no unit of work; then its entity change, if any.
        result, version_row = _insert_new(session.connection(), form_pk, version_pk, user, envelope, data, xml,
                                          xml_sha, instance_id, stored, device_id, user_agent, region_fallback)
        several = any(d.repeat for d in schema.entities)  # entity blocks in a repeat (entities spec 2025.1)
        if several or (block is not None and schema.entity is not None and (block.create or block.update)):
            # The submitter, already loaded: in the session's identity map (held by this name, as the map keeps
            # only weak references) the scope check finds it without a query.
            _submitter = session.merge(user, load=False) if user is not None else None
            # The version just written, as entity processing reads it, without reading it back (its repeat rows
            # and files load on first use; entity processing does not use them).
            version = loaded_instance(SubmissionVersion, version_row)
            session.add(version)  # a known row: nothing is inserted
            changes = entity_service.process_all(session, project_id, version, schema, block, data)
            if any(event.status == "held" for event in changes):
                result.held = True
                result.message += " " + held_service.AWAITS_REVIEW
        return result
    previous: SubmissionVersion | None = None
    if deprecated_id:
        # Edits of one version race on its row: the first takes it, the others wait here and then see it is
        # no longer current (docs/architecture.md, *Locks*). Exactly one edit wins; one version is current.
        previous = _stored_version(session, form_pk, deprecated_id)
        if previous is None:
            raise problems.EDITED_ORIGINAL_MISSING(deprecated_id=deprecated_id)
        if not previous.current:
            twin = _stored_version(session, form_pk, instance_id)
            if twin is not None:  # this very edit, sent twice at once: its twin won
                return _resend(session, twin, xml_sha, stored, form_pk)
            raise problems.EDIT_LOST_RACE(deprecated_id=deprecated_id)
        sub = session.get(Submission, previous.submission_id)
        assert sub is not None
        if sub.deleted_at is not None:
            raise problems.SUBMISSION_DELETED()
        if user is not None and not access.may_edit_record(session, user, project_id, sub):
            # An edit of a record outside the submitter's regions: stored as received, not current,
            # until a coordinator applies it (app.services.held).
            return _hold_edit(session, project_id, form_pk, version_pk, sub, previous, user, envelope, data, xml,
                              xml_sha, instance_id, stored, user_agent)
        previous.current = False
        sub.review_state = "edited"
        status = "edited"
    else:
        sub = Submission(form_id=form_pk, instance_id=instance_id, device_id=device_id,
                         submitter_id=user.id if user else None)
        session.add(sub)
        status = "created"
    sub.region_code = region_of(data.values) or sub.region_code or region_fallback
    if block is not None and block.uuid:
        sub.entity_uuid = block.uuid
    sub.updated_at = utcnow()
    session.flush()

    version = _new_version(form_pk, version_pk, sub, previous, user, envelope, data, xml, xml_sha, instance_id,
                           stored, user_agent, current=True)
    session.add(version)
    session.flush()
    sub.current_version_id = version.id
    session.flush()
    changes = entity_service.process_all(session, project_id, version, schema,
                                         envelope.entity, data)  # type: ignore[attr-defined]
    if status == "edited":
        events.announce(events.RecordEdited(session, sub.id, version))
    msg = "Submission received." if status == "created" else "Edited submission received."
    held_now = any(event.status == "held" for event in changes)
    if held_now:
        msg += " " + held_service.AWAITS_REVIEW
    return ReceiveResult(status, sub.id, sub.instance_id, form_pk, msg, missing_files=_missing(version),
                         held=held_now)


_SUB = Submission.__table__
_VERSION = SubmissionVersion.__table__
_ROW = SubmissionRepeatRow.__table__
# Built once: a statement given its values per call is compiled once and then found in the cache by its key.
# The plain INSERTs of every new submission, run on the driver's cursor (app/prepared.py): the same SQL and
# parameter processing as Core, without its per-statement machinery.
_INSERT_SUB = Prepared(_SUB.insert(), [c.key for c in _SUB.columns if c.key != "id"])
_INSERT_VERSION = Prepared(_VERSION.insert(), [c.key for c in _VERSION.columns if c.key != "id"])
_INSERT_ROW = Prepared(_ROW.insert(), [c.key for c in _ROW.columns if c.key != "id"])
_INSERT_ROW_ID = Prepared(_ROW.insert().returning(_ROW.c.id), [c.key for c in _ROW.columns if c.key != "id"])
_ATT = SubmissionAttachment.__table__
_INSERT_ATT = Prepared(_ATT.insert(), [c.key for c in _ATT.columns if c.key != "id"])
_SET_CURRENT = Prepared(_SUB.update().where(_SUB.c.id == bindparam("sub_id"))
                        .values(current_version_id=bindparam("vid")))


def _pg_record_ctes(rows_and_files: bool = False, given_ids: bool = False) -> tuple[list[str], list[Any]]:
    """PostgreSQL: the CTEs that write a new record — its submission and version, with `rows_and_files` its repeat
    rows (without nesting) and attachment rows — and their typed parameters. Both ids come first (`ids`: drawn
    here, or given as :sid and :vid), so the submission names its current version at once; the two foreign keys
    between the rows are checked at the end of the statement, when both exist."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    params: list[Any] = []

    def values(table: Table, prefix: str, ids: dict[str, str]) -> str:
        out = []
        for col in table.columns:
            if col.name == "id":
                continue
            if col.name in ids:
                out.append(ids[col.name])
            else:
                params.append(bindparam(f"{prefix}{col.name}", type_=col.type))
                out.append(f"CAST(:{prefix}{col.name} AS {col.type.compile(dialect=dialect)})")
        return ", ".join(out)

    def names(table: Table) -> str:
        return ", ".join(f'"{c.name}"' for c in table.columns if c.name != "id")

    if given_ids:
        params += [bindparam("sid", type_=BigInteger()), bindparam("vid", type_=BigInteger())]
    ctes = [
        "ids AS (SELECT CAST(:sid AS BIGINT) AS sid, CAST(:vid AS BIGINT) AS vid)" if given_ids else
        "ids AS (SELECT nextval(pg_get_serial_sequence('submission', 'id')) AS sid, "
        "nextval(pg_get_serial_sequence('submission_version', 'id')) AS vid)",
        f"s AS (INSERT INTO submission (id, {names(_SUB)}) "
        f"SELECT sid, {values(_SUB, 's_', {'current_version_id': 'vid'})} FROM ids)",
        f"v AS (INSERT INTO submission_version (id, {names(_VERSION)}) "
        f"SELECT vid, {values(_VERSION, 'v_', {'submission_id': 'sid'})} FROM ids)",
    ]
    if rows_and_files:
        # The repeat rows (without nesting) and the attachment rows too, from two JSON arrays: the whole record
        # in one statement, so it needs no transaction of its own (Database.raw_write(one_statement=True)).
        # Rows are inserted in document order (`i`), so their ids come out as the ORM's would.
        params += [bindparam("rows_json"), bindparam("files_json"),
                   bindparam("files_at", type_=_ATT.c.received_at.type)]
        ctes += [
            "r AS (INSERT INTO submission_repeat_row (version_id, repeat, ordinal, data, parent_id) "
            "SELECT vid, x.repeat, x.ordinal, x.data, NULL FROM ids, jsonb_to_recordset(CAST(:rows_json AS JSONB)) "
            "AS x(i integer, repeat varchar, ordinal integer, data jsonb) ORDER BY x.i)",
            "a AS (INSERT INTO submission_attachment "
            "(version_id, name, blob_key, md5, size, content_type, received_at) "
            "SELECT vid, y.name, y.blob_key, y.md5, y.size, y.content_type, "
            "CASE WHEN y.blob_key IS NULL THEN NULL ELSE CAST(:files_at AS TIMESTAMP WITH TIME ZONE) END "
            "FROM ids, jsonb_to_recordset(CAST(:files_json AS JSONB)) "
            "AS y(i integer, name varchar, blob_key varchar, md5 varchar, size bigint, content_type varchar) "
            "ORDER BY y.i)",
        ]
    return ctes, params


def _pg_insert_both(rows_and_files: bool = False) -> TextClause:
    """PostgreSQL: the submission and its version (with `rows_and_files` its repeat rows and files) in one
    statement, one round trip instead of three."""
    ctes, params = _pg_record_ctes(rows_and_files)
    return text("WITH " + ", ".join(ctes) + " SELECT sid, vid FROM ids").bindparams(*params)


_PG_INSERT_BOTH = Prepared(_pg_insert_both())
_PG_INSERT_ALL = Prepared(_pg_insert_both(rows_and_files=True))
# The lean entity path's record, ids drawn beforehand: its CTEs go first in the statement of the entity's rows.
_PG_RECORD_GIVEN = _pg_record_ctes(rows_and_files=True, given_ids=True)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def one_statement(data: SubmissionData) -> bool:
    """Whether a new record's rows go to PostgreSQL in one statement (not when repeats are nested: the
    children's rows need their parents' ids)."""
    return all(r.parent_index is None for r in data.repeat_rows)


def _insert_row_ids(conn: Connection | RawConnection, rows: list[dict[str, Any]]) -> list[int]:
    """Repeat rows whose children follow (nested repeats): one INSERT … RETURNING each, in document order."""
    ids = []
    for row in rows:
        cursor = _INSERT_ROW_ID.run(conn, row)
        ids.append(cursor.fetchone()[0])
        cursor.close()
    return ids


def _insert_new(conn: Connection | RawConnection, form_pk: int, version_pk: int, user: User | None, envelope: object,
                data: SubmissionData, xml: bytes, xml_sha: str, instance_id: str,
                stored: dict[str, tuple[BlobInfo, str]], device_id: str | None, user_agent: str | None,
                region_fallback: str | None,
                defer: tuple[tuple[int, int], dict[str, Any]] | None = None) -> tuple[ReceiveResult, dict[str, Any]]:
    """A new submission's rows, written with Core INSERTs: the same rows the ORM path (`_write` →
    `_new_version`) writes, in the same order, at a fraction of the CPU time (its entity change: `_write`).
    Returns the result and the version row's column values. `conn`: the write session's connection, or
    Database.raw_write's. `defer` (PostgreSQL, no nested repeats): the record's and version's ids, drawn by the
    caller, and a dict that receives the parameters of `_PG_RECORD_GIVEN` instead of the rows being written (the
    caller writes them in its own statement, `_write_lean`)."""
    now = utcnow()
    submitter = user.id if user else None
    block = envelope.entity  # type: ignore[attr-defined]
    sub = {
        "form_id": form_pk, "instance_id": instance_id, "created_at": now, "updated_at": now,
        "submitter_id": submitter, "device_id": device_id, "region_code": region_of(data.values) or region_fallback,
        "entity_uuid": block.uuid if block is not None and block.uuid else None, "review_state": "received",
        "deleted_at": None,
    }
    version = {
        "form_id": form_pk, "form_version_id": version_pk, "instance_id": instance_id,
        "deprecated_id": None, "instance_name": envelope.instance_name,  # type: ignore[attr-defined]
        "current": True, "xml": xml, "xml_sha256": xml_sha, "data": dict(data.values), "received_at": now,
        "submitter_id": submitter, "user_agent": (user_agent or "")[:300], "encrypted_file": data.encrypted_file,
    }
    postgresql = conn.dialect.name == "postgresql"
    if postgresql and one_statement(data):
        both = {f"s_{k}": v for k, v in sub.items()} | {f"v_{k}": v for k, v in version.items()}
        missing = [name for name in data.attachments if name not in stored]
        files = [{"i": i, "name": name, "blob_key": None, "md5": None, "size": None, "content_type": None}
                 if name not in stored else
                 {"i": i, "name": name, "blob_key": stored[name][0].key, "md5": stored[name][0].md5,
                  "size": stored[name][0].size, "content_type": stored[name][1]}
                 for i, name in enumerate(data.attachments)]
        rows = [{"i": i, "repeat": r.repeat, "ordinal": r.ordinal, "data": r.values}
                for i, r in enumerate(data.repeat_rows)]
        values = both | {"rows_json": _json(rows), "files_json": _json(files), "files_at": now}
        if defer is not None:
            (sub_id, version_id), out = defer
            out.update(values, sid=sub_id, vid=version_id)
        else:
            cursor = _PG_INSERT_ALL.run(conn, values)
            sub_id, version_id = cursor.fetchone()
            cursor.close()
        return (ReceiveResult("created", sub_id, instance_id, form_pk, "Submission received.",
                              missing_files=missing), version | {"id": version_id, "submission_id": sub_id})
    if postgresql:
        both = {f"s_{k}": v for k, v in sub.items()} | {f"v_{k}": v for k, v in version.items()}
        cursor = _PG_INSERT_BOTH.run(conn, both)
        sub_id, version_id = cursor.fetchone()
        cursor.close()
    else:
        sub_id = _INSERT_SUB.run(conn, sub | {"current_version_id": None}).lastrowid
        version_id = _INSERT_VERSION.run(conn, version | {"submission_id": sub_id}).lastrowid
    # Repeat rows level by level (rows without a parent, then their children …), each level one statement in
    # document order: the ids come out as the ORM's unit of work gives them, parents before children.
    ids: dict[int, int] = {}
    parents = {r.parent_index for r in data.repeat_rows if r.parent_index is not None}
    level = [r for r in data.repeat_rows if r.parent_index is None]
    while level:
        params = [{"version_id": version_id, "repeat": r.repeat, "ordinal": r.ordinal, "data": dict(r.values),
                   "parent_id": ids[r.parent_index] if r.parent_index is not None else None} for r in level]
        if any(r.index in parents for r in level):  # their ids are needed by the next level
            new_ids = _insert_row_ids(conn, params)
            ids.update(zip((r.index for r in level), new_ids, strict=True))
        else:
            _INSERT_ROW.run_many(conn, params)
        done = {r.index for r in level}
        level = [r for r in data.repeat_rows if r.parent_index in done]
    missing: list[str] = []
    if data.attachments:
        atts = []
        for name in data.attachments:
            got = stored.get(name)
            if got is None:
                missing.append(name)
                atts.append({"version_id": version_id, "name": name, "blob_key": None, "md5": None, "size": None,
                             "content_type": None, "received_at": None})
            else:
                info, ctype = got
                atts.append({"version_id": version_id, "name": name, "blob_key": info.key, "md5": info.md5,
                             "size": info.size, "content_type": ctype, "received_at": now})
        _INSERT_ATT.run_many(conn, atts)
    if not postgresql:
        _SET_CURRENT.run(conn, {"sub_id": sub_id, "vid": version_id}).close()
    return (ReceiveResult("created", sub_id, instance_id, form_pk, "Submission received.", missing_files=missing),
            version | {"id": version_id, "submission_id": sub_id})


def _new_version(form_pk: int, version_pk: int, sub: Submission, previous: SubmissionVersion | None,
                 user: User | None, envelope: object, data: SubmissionData, xml: bytes, xml_sha: str,
                 instance_id: str, stored: dict[str, tuple[BlobInfo, str]], user_agent: str | None,
                 current: bool) -> SubmissionVersion:
    """A version row with its repeat rows and attachments (files an edit did not re-send are kept)."""
    version = SubmissionVersion(
        submission_id=sub.id, form_id=form_pk, form_version_id=version_pk, instance_id=instance_id,
        deprecated_id=envelope.deprecated_id,  # type: ignore[attr-defined]
        instance_name=envelope.instance_name, current=current, xml=xml, xml_sha256=xml_sha,  # type: ignore[attr-defined]
        data=dict(data.values), submitter_id=user.id if user else None, user_agent=(user_agent or "")[:300],
        attachments=[],  # set, not lazily empty: _missing() then needs no SELECT
        encrypted_file=data.encrypted_file,
    )
    rows: list[SubmissionRepeatRow] = []
    for row in data.repeat_rows:
        parent = rows[row.parent_index] if row.parent_index is not None else None
        rr = SubmissionRepeatRow(repeat=row.repeat, ordinal=row.ordinal, data=dict(row.values), parent=parent)
        rows.append(rr)
        version.repeat_rows.append(rr)
    carried = {a.name: a for a in previous.attachments} if previous else {}
    for name in data.attachments:
        att = SubmissionAttachment(name=name)
        old = carried.get(name)
        if old is not None and old.blob_key:
            att.blob_key, att.md5, att.size = old.blob_key, old.md5, old.size
            att.content_type, att.received_at = old.content_type, old.received_at
        version.attachments.append(att)
    _attach(version, stored)
    return version


def _hold_edit(session: Session, project_id: int, form_pk: int, version_pk: int, sub: Submission,
               previous: SubmissionVersion, user: User, envelope: object, data: SubmissionData, xml: bytes,
               xml_sha: str, instance_id: str, stored: dict[str, tuple[BlobInfo, str]],
               user_agent: str | None) -> ReceiveResult:
    version = _new_version(form_pk, version_pk, sub, previous, user, envelope, data, xml, xml_sha, instance_id,
                           stored, user_agent, current=False)
    session.add(version)
    session.flush()
    regions = [sub.region_code or _child_region(session, project_id, sub.entity_uuid), region_of(data.values)]
    held_service.hold(session, project_id=project_id, kind="edit", sv=version, target=previous.instance_id,
                      regions=[r for r in regions if r] or [None], reason="edit")
    return ReceiveResult("edited", sub.id, sub.instance_id, form_pk,
                         "Edited submission received. " + held_service.AWAITS_REVIEW,
                         missing_files=_missing(version), held=True)


def _child_region(session: Session, project_id: int, uid: str | None) -> str | None:
    if not uid:
        return None
    return session.scalar(select(Entity.region_code).join(Dataset, Dataset.id == Entity.dataset_id).where(
        Dataset.project_id == project_id, Dataset.name == CHILDREN, Entity.uuid == uid))


def apply_held_edit(session: Session, project_id: int, sv: SubmissionVersion) -> None:
    """Make a held edit the record's current version (a coordinator approved it), then apply its effects."""
    lock_dataset(session, project_id, CHILDREN)  # docs/architecture.md, *Locks*: the list before the record
    sub = session.scalar(select(Submission).where(Submission.id == sv.submission_id).with_for_update())
    assert sub is not None
    previous = session.scalar(select(SubmissionVersion).where(
        SubmissionVersion.submission_id == sub.id, SubmissionVersion.instance_id == sv.deprecated_id))
    if previous is None or not previous.current or sub.deleted_at is not None:
        raise problems.HELD_EDIT_STALE()
    previous.current = False
    session.flush()
    sv.current = True
    sub.current_version_id = sv.id
    sub.region_code = region_of(sv.data or {}) or sub.region_code
    sub.review_state = "edited"
    sub.updated_at = utcnow()
    session.flush()
    fv = session.get(FormVersion, sv.form_version_id)
    assert fv is not None
    schema = schemas.schema_of(fv)
    envelope, tree = parse_submission(sv.xml, max_bytes=max(len(sv.xml), 1))
    entity_service.process_all(session, project_id, sv, schema, envelope.entity,  # type: ignore[attr-defined]
                               extract(tree, schema), check_scope=False)
    events.announce(events.RecordEdited(session, sub.id, sv))


# ---- encrypted forms (ODK form encryption): the manifest branch -------------------------------------
def _encrypted(db: Database, tree: SubmissionTree, user: User | None) -> tuple[SubmissionData, str | None] | None:
    """For an encrypted submission: its manifest's parts as the expected attachments (manifest order).

    The answers are unreadable on the server, so the record's region cannot come from them; it is
    the most specific region code covering every region of the submitting collector (the common
    prefix of their codes), so region-scoped users still see it. None: not encrypted."""
    try:
        data = extract_encrypted(tree)
    except SubmissionXMLError as err:
        raise problems.SUBMISSION_XML_UNREADABLE(detail=err.message) from err
    if data is None:
        return None
    region = None
    if user is not None:
        with db.reader() as session:
            codes = list(session.scalars(select(UserRegion.code).where(UserRegion.user_id == user.id)))
        prefix = os.path.commonprefix(codes) if codes else ""
        region = prefix if len(prefix) >= 2 else None
    return data, region


def _stored_version(session: Session, form_pk: int, instance_id: str) -> SubmissionVersion | None:
    """The stored version with this instanceID, its row locked until the commit (PostgreSQL)."""
    return session.scalar(select(SubmissionVersion).where(
        SubmissionVersion.form_id == form_pk, SubmissionVersion.instance_id == instance_id)
        .with_for_update().execution_options(populate_existing=True))


def _resend(session: Session, existing: SubmissionVersion, xml_sha: str, stored: dict[str, tuple[BlobInfo, str]],
            form_pk: int) -> ReceiveResult:
    """The same instanceID again: a retry, or the next part of a submission Collect split up."""
    sub = session.get(Submission, existing.submission_id)
    assert sub is not None
    if sub.deleted_at is not None:
        raise problems.SUBMISSION_DELETED_RESENT()
    if existing.xml_sha256 != xml_sha:
        raise problems.INSTANCE_ID_CONFLICT()
    _attach(existing, stored)
    sub.updated_at = utcnow()
    return ReceiveResult("duplicate", sub.id, sub.instance_id, form_pk,
                         "Submission received (already on the server).",
                         missing_files=_missing(existing))


def _attach(version: SubmissionVersion, stored: dict[str, tuple[BlobInfo, str]]) -> None:
    for att in version.attachments:
        got = stored.get(att.name)
        if got is not None:
            info, ctype = got
            att.blob_key, att.md5, att.size = info.key, info.md5, info.size
            att.content_type, att.received_at = ctype, utcnow()


def _missing(version: SubmissionVersion) -> list[str]:
    return [a.name for a in version.attachments if a.blob_key is None]
