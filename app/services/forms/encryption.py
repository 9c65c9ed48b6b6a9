"""Encrypted forms: turning managed encryption on (a new encrypted version of a form, or of every form of
the project), the encryption state of each form, and Central's __system/status of encrypted records.

Turning it on publishes a new version with the public key in the XForm's
``<submission base64RsaPublicKey="…"/>`` and the version suffixed ``[encrypted:<base64 time>]`` as
Central does; later uploads get the key injected at publish (app.services.forms.keys).

Entities and encryption do not combine: a form with an entity block (the care-file forms: they
create and update the children list) needs the server to read the answers, so it is refused.
Decrypting for exports: app.services.exports.decrypt.
"""
from __future__ import annotations

import base64
import struct
import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.models import Form, FormVersion, ManagedKey, SubmissionAttachment, SubmissionVersion, User
from app.services import access
from app.services.forms import xmlutil
from app.services.forms.keys import check_encryptable, form_key, inject_public_key, new_key, project_key
from app.services.forms.publish import publish_form
from forms import parse_xform
from storage import BlobStore


@dataclass
class EnableResult:
    key: ManagedKey
    encrypted: list[str] = field(default_factory=list)  # forms that got a new encrypted version
    skipped: dict[str, str] = field(default_factory=dict)  # form id → why it stays unencrypted


def enable(session: Session, store: BlobStore, *, project_id: int, user: User, passphrase: str, hint: str,
           form: Form | None = None) -> EnableResult:
    """Turn on managed encryption for one form, or (form None) for every form of the project."""
    if user.role not in ("admin", "coordinator") or not user.active:
        raise problems.ENCRYPTION_BY_COORDINATORS()
    access.require_form_change(session, user, project_id, form)  # every form of the project: province scope
    if form is not None:
        if form.current_version is None:
            raise problems.ENCRYPT_FORM_NOT_PUBLISHED(xml_form_id=form.xml_form_id)
        schema = parse_xform(form.current_version.xml)
        check_encryptable(form, schema)
        if form_key(session, form) is not None or schema.encrypted:
            raise problems.FORM_ENCRYPTED_ALREADY(xml_form_id=form.xml_form_id)
        row = new_key(session, project_id, form.id, passphrase, hint, user)
        _publish_encrypted(session, store, form, row, user)
        return EnableResult(row, [form.xml_form_id])
    if project_key(session, project_id) is not None:
        raise problems.PROJECT_ENCRYPTED_ALREADY()
    encryptable, skipped = [], {}
    for f in session.scalars(select(Form).where(Form.project_id == project_id).order_by(Form.xml_form_id)):
        if f.current_version is None:
            continue
        schema = parse_xform(f.current_version.xml)
        if schema.entity is not None:
            skipped[f.xml_form_id] = "entities"
        elif schema.encrypted:
            skipped[f.xml_form_id] = "encrypted"
        else:
            encryptable.append(f)
    if not encryptable:
        # A project key would only encrypt forms published later, without anyone asking for it.
        reasons = "; ".join(f"{fid}: {'creates or updates entities' if why == 'entities' else 'encrypted already'}"
                            for fid, why in skipped.items()) or "the project has no published form"
        raise problems.NOTHING_TO_ENCRYPT(reasons=reasons)
    row = new_key(session, project_id, None, passphrase, hint, user)
    result = EnableResult(row, skipped=skipped)
    for f in encryptable:
        _publish_encrypted(session, store, f, row, user)
        result.encrypted.append(f.xml_form_id)
    return result


def _publish_encrypted(session: Session, store: BlobStore, form: Form, row: ManagedKey, user: User | None
                       ) -> FormVersion:
    current = form.current_version
    assert current is not None
    stamp = base64.b64encode(struct.pack(">Q", int(time.time() * 1000))).decode().rstrip("=")
    version = f"{current.version}[encrypted:{stamp}]"
    xml = xmlutil.set_form_version(inject_public_key(current.xml, row.public_key), version)
    # The same publish path as an upload (attachments carried over, SQL views refreshed); validated
    # already when the unencrypted version was published.
    result = publish_form(session, store, project_id=form.project_id, data=xml,
                                       filename=f"{form.xml_form_id}.xml", user=user, validate=False)
    return result.version


# ---- status -----------------------------------------------------------------------------------------

def statuses(session: Session, versions: list[SubmissionVersion]) -> dict[int, str | None]:
    """Central's __system/status per submission version: notDecrypted, missingEncryptedFormData or None."""
    out: dict[int, str | None] = {}
    for v in versions:
        if not v.encrypted_file:
            out[v.id] = None
            continue
        present = session.scalar(select(SubmissionAttachment.id).where(
            SubmissionAttachment.version_id == v.id, SubmissionAttachment.name == v.encrypted_file,
            SubmissionAttachment.blob_key.is_not(None)))
        out[v.id] = "notDecrypted" if present is not None else "missingEncryptedFormData"
    return out


# ---- overview (web page) ------------------------------------------------------------------------------

@dataclass
class FormEncryption:
    form_id: str
    title: str
    state: str  # none | managed | own (self-supplied key) | entities (cannot be encrypted)
    key_id: int | None = None
    hint: str = ""


def overview(session: Session, project_id: int) -> tuple[list[FormEncryption], ManagedKey | None]:
    """Every form of the project with its encryption state, and the project's managed key if any."""
    out = []
    for f in session.scalars(select(Form).where(Form.project_id == project_id).order_by(Form.xml_form_id)):
        fv = f.current_version
        if fv is None:
            continue
        schema = parse_xform(fv.xml)
        row = form_key(session, f)
        if schema.entity is not None:
            state = "entities"
        elif schema.encrypted and row is not None and row.public_key in fv.xml.decode("utf-8", "replace"):
            state = "managed"
        elif schema.encrypted:
            state = "own"
        else:
            state = "none"
        out.append(FormEncryption(f.xml_form_id, fv.title, state, row.id if state == "managed" and row else None,
                                  row.hint if state == "managed" and row else ""))
    return out, project_key(session, project_id)
