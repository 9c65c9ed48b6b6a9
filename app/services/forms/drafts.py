"""Drafts: the next version of a form, tried on a phone before it reaches every phone.

As in ODK Central (docs/odk-protocol.md, *Drafts and form files*): uploading an XLSForm for a form that
already exists makes (or replaces) its draft. A draft has its own attachments and a secret test token; ODK Collect set
up with /v1/test/<token>/projects/<p>/forms/<f>/draft downloads only the draft and sends test
submissions to it. Test submissions live in their own tables, so no list, export, entity list or
child file can ever include one; they are deleted when the draft is published or abandoned.
Publishing turns the draft into a FormVersion, optionally under a new version string.
"""
from __future__ import annotations

import hashlib
import io
import mimetypes
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import problems
from app.models import DraftSubmission, DraftSubmissionFile, Form, FormDraft, FormDraftAttachment, FormVersion, User
from app.services import access
from app.services.forms import xmlutil
from app.services.forms.publish import (
    add_version,
    attachment_rows,
    check_no_outbound,
    compile_upload,
    empty_version_free,
    stamp_and_parse,
    stamp_now,
    upload_attachment,
    version_conflict,
    with_managed_key,
)
from app.services.identity import tokens
from app.services.schemas import schema_to_json
from forms import FormSchema, SubmissionXMLError, XFormError, extract, parse_submission, parse_xform
from storage import BlobStore, BlobTooLarge

TOKEN_BYTES = 32
DRAFT_TOKEN_PURPOSE = "draft-test-token"
MAX_NOTES = 2000


@dataclass
class DraftResult:
    form: Form
    draft: FormDraft
    replaced: bool  # an earlier draft of this form was replaced (its test submissions discarded)
    discarded: int  # test submissions discarded with the earlier draft
    version_taken: bool  # the version in the settings sheet is already published: choose another one


@dataclass
class TestReceipt:
    status: str  # "created" or "duplicate"
    instance_id: str
    missing_files: list[str] = field(default_factory=list)


def _lock(session: Session, form: Form) -> None:
    """Serialise draft changes of one form (two coordinators publishing at once: the second finds no
    draft instead of a unique-constraint error). PostgreSQL locks the form row; SQLite has one writer."""
    session.execute(select(Form.id).where(Form.id == form.id).with_for_update())


def _form(session: Session, project_id: int, xml_form_id: str) -> Form | None:
    return session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))


def version_used(session: Session, form: Form, version: str) -> bool:
    """Whether the form already published a version with this version string."""
    return session.scalar(select(FormVersion.id).where(FormVersion.form_id == form.id,
                                                       FormVersion.version == version)) is not None


def create_draft(session: Session, store: BlobStore, *, project_id: int, data: bytes, filename: str, key: str,
                 user: User | None = None, validate: bool | None = None, new_form: bool = False,
                 form_id: str | None = None, form_id_fallback: str | None = None) -> DraftResult:
    """Make (or replace) the draft of an existing form from an uploaded XLSForm (or XForm).

    The upload is stored byte for byte (its XLSForm stays downloadable). Files the current version
    or the earlier draft already has under the same name are kept. A form that does not exist yet
    has no draft (publish it with publish_form) unless `new_form`: then the form is made without a
    published version, as Central's `POST /forms?publish=false` does (phones see it once published).
    `form_id`: the form whose draft this must be (an upload of another form is refused, 400.8).
    `key`: the server's secret key, which seals the test token (identity/tokens.py)."""
    compiled = compile_upload(data, filename, validate, form_id_fallback)
    # without `version` the draft keeps the empty version; publish_draft decides (empty or stamped)
    xml, schema = with_managed_key(session, project_id, *stamp_and_parse(compiled, keep_empty=True))
    if form_id is not None and schema.form_id != form_id:
        raise problems.DRAFT_OF_ANOTHER_FORM(form_id=schema.form_id, form_id2=form_id).add(
            field="xmlFormId", value=schema.form_id)
    form = _form(session, project_id, schema.form_id)
    access.require_form_change(session, user, project_id, form)
    if form is None and new_form:
        form = Form(project_id=project_id, xml_form_id=schema.form_id, state="open")
        session.add(form)
        session.flush()
    elif form is None or (form.current_version is None and get_draft(session, form) is None and not new_form):
        raise problems.DRAFT_OF_UNPUBLISHED_FORM(form_id=schema.form_id)
    _lock(session, form)
    old = get_draft(session, form)
    carried: list[Any] = list(old.attachments) if old is not None else []
    names = {a.filename for a in carried}
    if form.current_version is not None:
        carried += [a for a in form.current_version.attachments if a.filename not in names]
    discarded = 0
    token = secrets.token_urlsafe(TOKEN_BYTES)
    token_hash, token_sealed = tokens.digest(token), tokens.seal(key, DRAFT_TOKEN_PURPOSE, token)
    if old is not None:
        discarded = count_test_submissions(session, old)
        # a phone set up with the test QR code keeps working
        token_hash, token_sealed = old.token_hash, old.token_sealed
        session.delete(old)
        session.flush()
    source = store.put(io.BytesIO(data))
    draft = FormDraft(
        form_id=form.id, version=schema.version, title=schema.title or schema.form_id, xml=xml,
        md5=hashlib.md5(xml).hexdigest(), sha256=hashlib.sha256(xml).hexdigest(), schema=schema_to_json(schema),
        version_stamped=not compiled.version, source_filename=filename, source_blob_key=source.key,
        warnings=list(compiled.warnings), validation_note=compiled.validation_note,
        token_hash=token_hash, token_sealed=token_sealed,
        created_by_id=user.id if user else None,
    )
    draft.attachments = attachment_rows(session, store, FormDraftAttachment, project_id, schema, carried,
                                        compiled.itemsets_csv)
    session.add(draft)
    session.flush()
    taken = bool(compiled.version) and version_used(session, form, schema.version)
    return DraftResult(form, draft, old is not None, discarded, taken)


def draft_from_published(session: Session, store: BlobStore, form: Form, *, key: str, user: User | None = None,
                         validate: bool | None = None) -> DraftResult:
    """A draft that copies the current published version (Central's `POST /draft` without a body), made
    from the same uploaded file, so its media files can be replaced and it can be published under a
    new version string."""
    fv = form.current_version
    if fv is None:
        raise problems.DRAFT_NOTHING_TO_COPY(xml_form_id=form.xml_form_id)
    if fv.source_blob_key:
        with store.open(fv.source_blob_key) as fh:
            data = fh.read()
        filename = fv.source_filename or f"{form.xml_form_id}.xlsx"
    else:
        data, filename = fv.xml, f"{form.xml_form_id}.xml"
    return create_draft(session, store, project_id=form.project_id, data=data, filename=filename, key=key,
                        user=user, validate=validate)


def get_draft(session: Session, form: Form) -> FormDraft | None:
    """The form's draft, if it has one."""
    return session.scalar(select(FormDraft).where(FormDraft.form_id == form.id))


def require_draft(session: Session, form: Form) -> FormDraft:
    draft = get_draft(session, form)
    if draft is None:
        raise problems.FORM_NO_DRAFT(xml_form_id=form.xml_form_id)
    return draft


def draft_schema(draft: FormDraft) -> FormSchema:
    return parse_xform(draft.xml)


def count_test_submissions(session: Session, draft: FormDraft) -> int:
    return int(session.scalar(select(func.count()).select_from(DraftSubmission)
                              .where(DraftSubmission.draft_id == draft.id)) or 0)


def list_test_submissions(session: Session, draft: FormDraft) -> list[DraftSubmission]:
    """Test submissions sent to the draft, newest first."""
    return list(session.scalars(select(DraftSubmission).where(DraftSubmission.draft_id == draft.id)
                                .order_by(DraftSubmission.id.desc())))


def _drop(session: Session, draft: FormDraft) -> int:
    """Delete the draft with its attachments rows and test submissions (their files become orphans
    for `carefile blobs sweep`, unless a published version still uses them)."""
    n = count_test_submissions(session, draft)
    for sub in list_test_submissions(session, draft):
        session.delete(sub)
    session.delete(draft)
    session.flush()
    return n


def delete_draft(session: Session, form: Form, *, user: User | None) -> int:
    """Abandon the form's draft; returns how many test submissions were discarded with it (`user` None:
    the command line)."""
    access.require_form_change(session, user, form.project_id, form)
    _lock(session, form)
    return _drop(session, require_draft(session, form))


def check_version_string(version: str) -> str:
    version = version.strip()
    if not version or len(version) > 250 or any(ord(c) < 32 for c in version):
        raise problems.VERSION_NOT_ACCEPTABLE()
    return version


def check_publish_notes(notes: str | None) -> str | None:
    """Publish notes (what changed in this version, Central's `publishNotes`): at most 2,000 characters."""
    notes = (notes or "").strip()
    if len(notes) > MAX_NOTES or any(ord(c) < 32 and c not in "\t\r\n" for c in notes):
        raise problems.PUBLISH_NOTES_TOO_LONG(limit=MAX_NOTES)
    return notes or None


def publish_draft(session: Session, form: Form, *, version: str | None = None,
                  user: User | None = None, notes: str | None = None) -> tuple[FormVersion, int]:
    """Publish the form's draft as its new current version; returns it and the number of test
    submissions discarded. `version` replaces the draft's version string (an XLSForm without one
    gets the publishing time). A version this form already published is refused (409.6). `user` None: the
    command line."""
    access.require_form_change(session, user, form.project_id, form)
    notes = check_publish_notes(notes)
    _lock(session, form)
    draft = require_draft(session, form)
    xml = draft.xml
    check_no_outbound(xml, draft.source_filename or f"{form.xml_form_id}.xml")  # a draft made before the rule
    if version is not None and version.strip():
        version = check_version_string(version)
    elif draft.version_stamped:  # no version in the upload: the empty one while it is free, as Central
        version = "" if empty_version_free(session, form) else stamp_now()
    else:
        version = draft.version
    if version != draft.version:
        xml = xmlutil.set_form_version(xml, version)
    if version_used(session, form, version):
        raise version_conflict(form.xml_form_id, version)
    try:
        schema = parse_xform(xml)
    except XFormError as err:  # pragma: no cover - the draft's XML was parsed when it was made
        raise problems.DRAFT_NOT_VALID_XFORM(err=err) from err
    attachments = list(draft.attachments)
    published = add_version(session, form, xml=xml, schema=schema, source_filename=draft.source_filename,
                            source_blob_key=draft.source_blob_key, warnings=list(draft.warnings),
                            validation_note=draft.validation_note, user=user, attachments=attachments)
    published.publish_notes = notes
    return published, _drop(session, draft)


def upload_draft_attachment(session: Session, store: BlobStore, draft: FormDraft, filename: str, stream: Any,
                            max_size: int, *, user: User | None) -> FormDraftAttachment:
    """Store a media or data file of the draft (the published version keeps its own)."""
    att: FormDraftAttachment = upload_attachment(session, store, draft, filename, stream, max_size,  # type: ignore[arg-type]
                                                 user=user)
    return att


def test_token(draft: FormDraft, key: str) -> str | None:
    """The draft's test token, unsealed with the server's secret key (None: sealed under another key)."""
    return tokens.unseal(key, DRAFT_TOKEN_PURPOSE, draft.token_sealed, draft.token_hash)


def renew_test_token(session: Session, draft: FormDraft, key: str) -> str:
    """A new test token for the draft (when the old one cannot be unsealed any more); the old one stops working."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    draft.token_hash, draft.token_sealed = tokens.digest(token), tokens.seal(key, DRAFT_TOKEN_PURPOSE, token)
    session.flush()
    return token


def draft_by_token(session: Session, project_id: int, xml_form_id: str, token: str) -> FormDraft:
    """The draft a test URL names; a wrong, old or blank token is the same 404 as no draft."""
    form = _form(session, project_id, xml_form_id)
    draft = get_draft(session, form) if form is not None else None
    if draft is None or not token or not tokens.same(draft.token_hash, token):
        raise problems.NO_DRAFT_AT_TEST_ADDRESS()
    return draft


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".") \
        and "\x00" not in name and len(name) <= 300


def receive_test_submission(session: Session, store: BlobStore, draft: FormDraft, *, xml: bytes,
                            files: dict[str, Any], user_agent: str | None = None,
                            max_file_bytes: int | None = None) -> TestReceipt:
    """Keep a test submission of the draft (or add the files of a resent / split one). Nothing
    reaches real submissions, entities or children."""
    try:
        envelope, tree = parse_submission(xml)
    except SubmissionXMLError as err:
        raise problems.SUBMISSION_XML_UNREADABLE(detail=err.message) from err
    form_id = draft.form.xml_form_id
    if envelope.form_id != form_id:
        raise problems.TEST_SUBMISSION_OF_ANOTHER_FORM(form_id=form_id, form_id2=envelope.form_id)
    if envelope.version != draft.version:
        raise problems.DRAFT_VERSION_MISMATCH(version=envelope.version, version2=draft.version)
    data = extract(tree, draft_schema(draft))
    for name in data.attachments:
        if not _safe_name(name):
            raise problems.DRAFT_FILE_NAME_NOT_PLAIN(name=name)
    xml_sha = hashlib.sha256(xml).hexdigest()
    instance_id = envelope.instance_id or f"sha256:{xml_sha}"
    sub = session.scalar(select(DraftSubmission).where(DraftSubmission.draft_id == draft.id,
                                                       DraftSubmission.instance_id == instance_id))
    status = "duplicate"
    if sub is None:
        sub = DraftSubmission(draft_id=draft.id, instance_id=instance_id, xml=xml, data=dict(data.values),
                              user_agent=(user_agent or "")[:300], files=[])
        for name in data.attachments:
            sub.files.append(DraftSubmissionFile(name=name))
        session.add(sub)
        status = "created"
    elif hashlib.sha256(sub.xml).hexdigest() != xml_sha:
        raise problems.TEST_INSTANCE_ID_CONFLICT()
    for row in sub.files:
        incoming = files.get(row.name)
        if incoming is None or row.blob_key is not None:
            continue
        try:
            info = store.put(incoming, max_size=max_file_bytes)
        except BlobTooLarge as err:
            raise problems.DRAFT_FILE_TOO_LARGE(name=row.name) from err
        row.blob_key, row.md5, row.size = info.key, info.md5, info.size
        row.content_type = mimetypes.guess_type(row.name)[0] or "application/octet-stream"
    session.flush()
    return TestReceipt(status, instance_id, [f.name for f in sub.files if f.blob_key is None])
