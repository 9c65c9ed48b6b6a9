"""A form's versions as files: the XForm and the XLSForm exactly as uploaded, for every published
version and for the draft (docs/odk-protocol.md, *Drafts and form files*)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from app import problems
from app.models import Form, FormDraft, FormVersion, User

DRAFT = "draft"


@dataclass
class VersionFile:
    filename: str
    content_type: str
    data: bytes | None = None  # the XForm
    blob_key: str | None = None  # the uploaded XLSForm, in the blob store


def list_versions(session: Session, form: Form) -> list[tuple[FormVersion, str | None]]:
    """Published versions, newest first, each with the name of who published it."""
    return [(fv, by) for fv, by in session.execute(
        select(FormVersion, User.username).outerjoin(User, User.id == FormVersion.published_by_id)
        .options(defer(FormVersion.xml), defer(FormVersion.schema))
        .where(FormVersion.form_id == form.id).order_by(FormVersion.published_at.desc(), FormVersion.id.desc()))]


def find_version(session: Session, form: Form, ref: str) -> FormVersion | FormDraft:
    """A published version by its id (as a string), or the draft for "draft"."""
    found: FormVersion | FormDraft | None = None
    if ref == DRAFT:
        found = session.scalar(select(FormDraft).where(FormDraft.form_id == form.id))
    elif ref.isdigit() and int(ref) < 2**31:  # ids are 32-bit on PostgreSQL; longer is no id
        fv = session.get(FormVersion, int(ref))
        found = fv if fv is not None and fv.form_id == form.id else None
    if found is None:
        raise problems.FORM_VERSION_NOT_FOUND(xml_form_id=form.xml_form_id, ref=ref)
    return found


def _stem(form: Form, item: FormVersion | FormDraft) -> str:
    return f"{form.xml_form_id}-{item.version}" + ("-draft" if isinstance(item, FormDraft) else "")


def version_xml(session: Session, form: Form, ref: str) -> VersionFile:
    item = find_version(session, form, ref)
    return VersionFile(f"{_stem(form, item)}.xml", "application/xml; charset=utf-8", data=item.xml)


def version_source(session: Session, form: Form, ref: str) -> VersionFile:
    """The XLSForm (or XForm, or .md) file the version was made from, byte for byte."""
    item = find_version(session, form, ref)
    if not item.source_blob_key:
        raise problems.VERSION_NOT_FROM_UPLOAD()
    name = item.source_filename or f"{_stem(form, item)}.xlsx"
    ctype = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             "xls": "application/vnd.ms-excel", "xml": "application/xml"}.get(name.rsplit(".", 1)[-1].lower(),
                                                                               "application/octet-stream")
    return VersionFile(name, ctype, blob_key=item.source_blob_key)
