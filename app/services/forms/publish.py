"""Publishing forms: XLSForm → XForm → FormVersion, versions, attachments and states."""
from __future__ import annotations

import hashlib
import io
import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.errors import Problem
from app.models import FORM_STATES, Form, FormAssignment, FormAttachment, FormVersion, User, utcnow
from app.services import access, regions
from app.services.children.store import ensure_dataset, get_dataset
from app.services.forms import keys, xmlutil
from app.services.forms.lookup import list_forms
from app.services.forms.views import refresh_views
from app.services.schemas import schema_to_json
from forms import CompiledForm, FormSchema, XFormError, XLSFormError, compile_xlsform, parse_xform
from forms.outbound import outbound
from storage import BlobStore, BlobTooLarge


@dataclass
class PublishResult:
    form: Form
    version: FormVersion
    created: bool  # False when the identical version was already published
    warnings: list[str]
    validation_note: str
    managed_encryption: bool = False  # the project's managed key was put into this version (say so)


def _issues(err: XLSFormError) -> list[dict[str, Any]]:
    return [{"message": i.message, "sheet": i.sheet, "row": i.row} for i in err.issues]


def compile_upload(data: bytes, filename: str, validate: bool | None,
                   form_id_fallback: str | None = None) -> CompiledForm:
    """Compile an uploaded XLSForm (or XForm); errors become a Problem listing sheet and row. A form that
    would send records to, or load files from, another host is refused (check_no_outbound).
    `form_id_fallback`: the form id when the settings sheet has none (Central's
    `X-XlsForm-FormId-Fallback`, kept as sent); else one is made from the file name."""
    try:
        compiled = compile_xlsform(data, filename, validate=validate, form_id_fallback=form_id_fallback)
    except XLSFormError as err:
        raise problems.FORM_NOT_PUBLISHABLE(filename=filename, err=err).add(issues=_issues(err)) from err
    if compiled.form_id.lower().endswith((".xls", ".xlsx", ".xml")):  # as Central: `…/forms/x.xml` is a file
        raise problems.FORM_ID_FILE_EXTENSION(form_id=compiled.form_id[:100]).add(field="formId",
                                                                                  value=compiled.form_id)
    check_no_outbound(compiled.xform, filename)
    return compiled


def check_no_outbound(xform: bytes, filename: str) -> None:
    """400.77 for a form whose XForm sends records to another host (a submission action: the XLSForm's
    submission_url) or loads data or media from one (external instances, media by URL); jr:// files
    are the phone's own copies of the form's files and are fine."""
    found = outbound(xform)
    if not found:
        return
    reasons = "; ".join(o.describe() for o in found)
    raise problems.FORM_POINTS_ELSEWHERE(filename=filename, reasons=reasons).add(
        issues=[{"message": o.describe(), "sheet": "settings" if o.what == "submission" else None,
                 "row": None, "what": o.what, "address": o.where} for o in found])


def stamp_and_parse(compiled: CompiledForm, *, keep_empty: bool = False) -> tuple[bytes, FormSchema]:
    """The XForm to store and its schema. A form without `version` keeps the empty version when
    `keep_empty` (as Central: submissions without a version attribute belong to it); otherwise it is
    stamped with the time, so that phones can tell a changed form from the one they have."""
    xml = compiled.xform
    if not compiled.version and not keep_empty:
        xml = xmlutil.set_form_version(xml, stamp_now())
    try:
        return xml, parse_xform(xml)
    except XFormError as err:
        raise problems.COMPILED_FORM_NOT_VALID_XFORM(err=err) from err


def stamp_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def empty_version_free(session: Session, form: Form | None) -> bool:
    """Whether a form without `version` may be published with the empty version: the form has none yet
    (docs/odk-protocol.md, *Submissions*). A later change without a version is stamped instead."""
    return form is None or session.scalar(select(FormVersion.id).where(FormVersion.form_id == form.id,
                                                                       FormVersion.version == "")) is None


def with_managed_key(session: Session, project_id: int, xml: bytes, schema: FormSchema) -> tuple[bytes, FormSchema]:
    """Managed encryption: a new version (or draft) of an encrypted form carries the public key."""
    if (public_key := keys.managed_public_key(session, project_id, schema.form_id, schema)) is not None:
        xml = keys.inject_public_key(xml, public_key)
        schema = parse_xform(xml)
    return xml, schema


def version_conflict(form_id: str, version: str) -> Problem:
    return problems.VERSION_CONFLICT(form_id=form_id, version=version)


def publish_form(session: Session, store: BlobStore, *, project_id: int, data: bytes, filename: str,
                 user: User | None = None, validate: bool | None = None,
                 form_id_fallback: str | None = None) -> PublishResult:
    """Publish an XLSForm: a new form, or a new version of the form with the same form_id."""
    compiled = compile_upload(data, filename, validate, form_id_fallback)
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == compiled.form_id))
    stamped, plain = stamp_and_parse(compiled, keep_empty=empty_version_free(session, form))
    xml, schema = with_managed_key(session, project_id, stamped, plain)
    managed = xml != stamped
    access.require_form_change(session, user, project_id, form)
    sha = hashlib.sha256(xml).hexdigest()
    if form is not None:
        same = session.scalar(select(FormVersion).where(FormVersion.form_id == form.id,
                                                        FormVersion.version == schema.version))
        if same is not None:
            if same.sha256 == sha or (not compiled.version and _same_content(same.xml, xml)):
                return PublishResult(form, same, False, list(same.warnings), same.validation_note)
            raise version_conflict(schema.form_id, schema.version)
        if not compiled.version and form.current_version and _same_content(form.current_version.xml, xml):
            cur = form.current_version
            return PublishResult(form, cur, False, list(cur.warnings), cur.validation_note)
    else:
        form = Form(project_id=project_id, xml_form_id=schema.form_id, state="open")
        session.add(form)
        session.flush()

    source = store.put(io.BytesIO(data))
    previous = form.current_version
    ensure_entity_list(session, project_id, schema)
    attachments = attachment_rows(session, store, FormAttachment, project_id, schema,
                                  previous.attachments if previous else [], compiled.itemsets_csv)
    version = add_version(session, form, xml=xml, schema=schema, source_filename=filename,
                          source_blob_key=source.key, warnings=list(compiled.warnings),
                          validation_note=compiled.validation_note, user=user, attachments=attachments)
    return PublishResult(form, version, True, list(compiled.warnings), compiled.validation_note, managed)


def attachment_rows(session: Session, store: BlobStore, cls: Any, project_id: int, schema: FormSchema,
                    carried: list[Any], itemsets_csv: bytes | None) -> list[Any]:
    """Rows (of cls: FormAttachment or FormDraftAttachment) for the files schema references; files
    already uploaded under the same name (carried) are kept."""
    by_name = {a.filename: a for a in carried}
    rows = []
    for att in schema.attachments:
        # "<list>.csv" is served from the entity list when such a list exists; else it is a file to upload.
        linked = att.dataset if att.dataset and get_dataset(session, project_id, att.dataset) else None
        generated = linked is None and att.filename == regions.FORM_CSV  # made per user: app.services.forms.files
        row = cls(filename=att.filename, kind="regions" if generated else att.kind, dataset=linked)
        old = by_name.get(att.filename)
        if old is not None and old.blob_key is not None and linked is None and not generated:
            row.blob_key, row.md5, row.size = old.blob_key, old.md5, old.size
            row.content_type, row.uploaded_at = old.content_type, old.uploaded_at
        rows.append(row)
    if itemsets_csv is not None:
        info = store.put(io.BytesIO(itemsets_csv))
        existing = next((a for a in rows if a.filename == "itemsets.csv"), None)
        if existing is None:
            existing = cls(filename="itemsets.csv", kind="csv")
            rows.append(existing)
        existing.blob_key, existing.md5, existing.size = info.key, info.md5, info.size
        existing.content_type, existing.uploaded_at = "text/csv", utcnow()
    return rows


def ensure_entity_list(session: Session, project_id: int, schema: FormSchema) -> bool:
    """Create the entity list the form declares, if any (True when it declares one)."""
    if schema.entity is None:
        return False
    ensure_dataset(session, project_id, schema.entity.dataset, list(schema.entity.properties.values()))
    return True


def add_version(session: Session, form: Form, *, xml: bytes, schema: FormSchema, source_filename: str | None,
                source_blob_key: str | None, warnings: list[str], validation_note: str, user: User | None,
                attachments: list[Any]) -> FormVersion:
    """Make xml the form's current published version (entity list, attachments, SQL views)."""
    version = FormVersion(
        form_id=form.id, version=schema.version, title=schema.title or schema.form_id, xml=xml,
        md5=hashlib.md5(xml).hexdigest(), sha256=hashlib.sha256(xml).hexdigest(), schema=schema_to_json(schema),
        source_filename=source_filename, source_blob_key=source_blob_key, warnings=list(warnings),
        validation_note=validation_note, published_by_id=user.id if user else None,
    )
    if ensure_entity_list(session, form.project_id, schema):
        own = {a.filename for a in schema.attachments if schema.entity and a.dataset == schema.entity.dataset}
        for row in attachments:
            if row.filename in own and row.dataset is None:  # the list this version creates serves its CSV
                row.dataset = schema.entity.dataset if schema.entity else None
                row.blob_key = row.md5 = row.size = row.content_type = row.uploaded_at = None
    for row in attachments:
        version.attachments.append(FormAttachment(
            filename=row.filename, kind=row.kind, dataset=row.dataset, blob_key=row.blob_key, md5=row.md5,
            size=row.size, content_type=row.content_type, uploaded_at=row.uploaded_at))
    session.add(version)
    session.flush()
    form.current_version_id = version.id
    form.current_version = version
    session.flush()
    if schema.entity is not None:
        _link_entity_list(session, form.project_id, schema.entity.dataset)
    refresh_views(session, form.id)
    return version


def _link_entity_list(session: Session, project_id: int, dataset: str) -> None:
    """Forms published before the list existed: their '<list>.csv' now comes from the list."""
    rows = session.scalars(select(FormAttachment).join(FormVersion).join(Form, Form.id == FormVersion.form_id).where(
        Form.project_id == project_id, FormAttachment.filename == f"{dataset}.csv",
        FormAttachment.blob_key.is_(None), FormAttachment.dataset.is_(None)))
    for row in rows:
        row.dataset = dataset


def _same_content(a: bytes, b: bytes) -> bool:
    return xmlutil.strip_form_version(a) == xmlutil.strip_form_version(b)


def set_state(session: Session, form: Form, state: str, *, user: User | None) -> None:
    """Open, closing or closed (`user` None: the command line)."""
    access.require_form_change(session, user, form.project_id, form)
    if state not in FORM_STATES:
        raise problems.UNKNOWN_FORM_STATE(state=state)
    form.state = state


def forms_for_phone(session: Session, user: User, project_id: int) -> list[Form]:
    """Open forms the user may fill, ordered by title then form id (what formList shows)."""
    forms = [f for f in list_forms(session, project_id)
             if f.state == "open" and f.current_version is not None and access.may_fill(session, user, f)]
    return sorted(forms, key=lambda f: ((f.current_version.title if f.current_version else "") or f.xml_form_id,
                                        f.xml_form_id))


def assign_forms(session: Session, user: User, forms: list[Form]) -> None:
    existing = set(session.scalars(select(FormAssignment.form_id).where(FormAssignment.user_id == user.id)))
    for form in forms:
        if form.id not in existing:
            session.add(FormAssignment(user_id=user.id, form_id=form.id))


def upload_attachment(session: Session, store: BlobStore, version: FormVersion, filename: str,
                      stream: io.BufferedIOBase | Any, max_size: int, *, user: User | None) -> FormAttachment:
    """Store the file a form version (or draft) expects under filename; unexpected names are refused.
    `user` None: the command line."""
    form = session.get(Form, version.form_id)
    access.require_form_change(session, user, form.project_id if form else 0, form)
    att = next((a for a in version.attachments if a.filename == filename), None)
    if att is None:
        expected = ", ".join(a.filename for a in version.attachments) or "none"
        raise problems.FORM_DOES_NOT_USE_FILE(filename=filename, expected=expected)
    if att.dataset is not None:
        raise problems.ENTITY_LIST_NOT_UPLOADABLE(filename=filename, dataset=att.dataset)
    if att.generated:
        raise problems.REGIONS_CSV_NOT_UPLOADABLE(filename=filename)
    try:
        info = store.put(stream, max_size=max_size)
    except BlobTooLarge as err:
        raise problems.ATTACHMENT_TOO_LARGE(filename=filename, size=max_size // (1024 * 1024)) from err
    att.blob_key, att.md5, att.size = info.key, info.md5, info.size
    att.content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    att.uploaded_at = utcnow()
    return att


def missing_attachments(version: FormVersion) -> list[str]:
    return [a.filename for a in version.attachments if not a.present]
