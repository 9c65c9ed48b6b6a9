"""Encrypted forms: managed keys (as ODK Central), the public key in published versions, and
decryption of encrypted submissions for exports (managed passphrase or a self-supplied private key).

Managed encryption. A coordinator turns it on for one form, or for the whole project, with a
passphrase and a hint. The server generates an RSA-2048 key pair and stores the public key and
only an *encrypted* private key: the PKCS#8 DER private key is sealed with AES-256-GCM under a
32-byte key derived from the passphrase with scrypt (N=2^15, r=8, p=1, 16-byte random salt; the
parameters are stored with the key so they can be raised later). AES-GCM's tag makes a wrong
passphrase fail cleanly. The passphrase is never stored or logged; it is needed again for every
decrypting export. (Central uses PBKDF2-SHA256 with 128,000 iterations and AES-256-CBC; scrypt is
memory-hard, so guessing passphrases from a stolen database costs far more.)

Turning it on publishes a new version of the form (or of every form of the project) with the public
key in the XForm's ``<submission base64RsaPublicKey="…"/>`` and the version suffixed
``[encrypted:<base64 time>]`` as Central does; later uploads get the key injected at publish.

Entities and encryption do not combine: a form with an entity block (the care-file forms: they
create and update the children list) needs the server to read the answers, so it is refused.
"""
from __future__ import annotations

import base64
import io
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Problem
from app.models import Form, FormVersion, ManagedKey, SubmissionAttachment, SubmissionVersion, User
from app.services.access import policy as access
from forms import FormSchema, SubmissionXMLError, extract, parse_submission, parse_xform
from forms.encryption import EncryptionError, RecordDecryptor, parse_manifest, plain_name, public_key_base64
from storage import BlobNotFound, BlobStore

KDF_N, KDF_R, KDF_P = 2**15, 8, 1
MIN_PASSPHRASE = 10
XF = "http://www.w3.org/2002/xforms"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


# ---- managed keys ---------------------------------------------------------------------------------

def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _aad(row: ManagedKey) -> bytes:
    return f"carefile-managed-key:{row.project_id}:{row.public_key}".encode()


def project_key(session: Session, project_id: int) -> ManagedKey | None:
    return session.scalar(select(ManagedKey).where(ManagedKey.project_id == project_id, ManagedKey.form_id.is_(None)))


def form_key(session: Session, form: Form) -> ManagedKey | None:
    """The managed key that applies to the form: its own, else the project's (None: no managed key)."""
    own = session.scalar(select(ManagedKey).where(ManagedKey.form_id == form.id))
    return own or project_key(session, form.project_id)


def get_key(session: Session, project_id: int, key_id: int) -> ManagedKey:
    row = session.get(ManagedKey, key_id)
    if row is None or row.project_id != project_id:
        raise Problem(404, "404.80", f"There is no encryption key {key_id} in this project.")
    return row


def unlock(row: ManagedKey, passphrase: str) -> rsa.RSAPrivateKey:
    """The private key of a managed key; Problem 400 if the passphrase is wrong."""
    try:
        secret = _derive(passphrase or "", row.kdf_salt, row.kdf_n, row.kdf_r, row.kdf_p)
        der = AESGCM(secret).decrypt(row.nonce, row.private_key, _aad(row))
    except InvalidTag as err:
        hint = f" Hint: {row.hint}" if row.hint else ""
        raise Problem(400, "400.80", f"The passphrase is not correct for this form's encryption key.{hint}") from err
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _check_encryptable(form: Form, schema: FormSchema) -> None:
    if schema.entity is not None:
        raise Problem(409, "409.80", f"The form '{form.xml_form_id}' creates or updates entities (the children "
                      "list). The server must read its answers to keep each child's file, so it cannot be "
                      "encrypted. Encryption and entities do not combine.")


def _new_key(session: Session, project_id: int, form_id: int | None, passphrase: str, hint: str,
             user: User | None) -> ManagedKey:
    if len(passphrase or "") < MIN_PASSPHRASE:
        raise Problem(400, "400.81", f"The passphrase must be at least {MIN_PASSPHRASE} characters long. Write it "
                      "down and keep it safe: without it nobody can read the encrypted submissions.")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    salt, nonce = os.urandom(16), os.urandom(12)
    row = ManagedKey(project_id=project_id, form_id=form_id, public_key=public_key_base64(private.public_key()),
                     private_key=b"", nonce=nonce, kdf="scrypt", kdf_salt=salt, kdf_n=KDF_N, kdf_r=KDF_R,
                     kdf_p=KDF_P, hint=(hint or "").strip()[:500], created_by_id=user.id if user else None)
    secret = _derive(passphrase, salt, KDF_N, KDF_R, KDF_P)
    row.private_key = AESGCM(secret).encrypt(nonce, der, _aad(row))
    session.add(row)
    session.flush()
    return row


@dataclass
class EnableResult:
    key: ManagedKey
    encrypted: list[str] = field(default_factory=list)  # forms that got a new encrypted version
    skipped: dict[str, str] = field(default_factory=dict)  # form id → why it stays unencrypted


def enable(session: Session, store: BlobStore, *, project_id: int, user: User, passphrase: str, hint: str,
           form: Form | None = None) -> EnableResult:
    """Turn on managed encryption for one form, or (form None) for every form of the project."""
    if user.role not in ("admin", "coordinator") or not user.active:
        raise Problem(403, "403.80", "Only coordinators and administrators may turn on encryption.")
    if form is not None:
        if form.current_version is None:
            raise Problem(404, "404.81", f"The form '{form.xml_form_id}' has no published version.")
        schema = parse_xform(form.current_version.xml)
        _check_encryptable(form, schema)
        if form_key(session, form) is not None or schema.encrypted:
            raise Problem(409, "409.81", f"The form '{form.xml_form_id}' is encrypted already.")
        row = _new_key(session, project_id, form.id, passphrase, hint, user)
        _publish_encrypted(session, store, form, row, user)
        return EnableResult(row, [form.xml_form_id])
    if project_key(session, project_id) is not None:
        raise Problem(409, "409.82", "Encryption is on for this project already.")
    row = _new_key(session, project_id, None, passphrase, hint, user)
    result = EnableResult(row)
    for f in session.scalars(select(Form).where(Form.project_id == project_id).order_by(Form.xml_form_id)):
        if f.current_version is None:
            continue
        schema = parse_xform(f.current_version.xml)
        if schema.entity is not None:
            result.skipped[f.xml_form_id] = "entities"
        elif schema.encrypted:
            result.skipped[f.xml_form_id] = "encrypted"
        else:
            _publish_encrypted(session, store, f, row, user)
            result.encrypted.append(f.xml_form_id)
    return result


def inject_public_key(xml: bytes, public_key: str) -> bytes:
    """The XForm with base64RsaPublicKey on its model's <submission> element (added if missing)."""
    doc = etree.fromstring(xml, _PARSER)
    model = next(doc.iter(f"{{{XF}}}model"), None)
    if model is None:
        raise Problem(400, "400.82", "The form has no XForms model; the encryption key cannot be added.")
    sub = model.find(f"{{{XF}}}submission")
    if sub is None:
        sub = etree.SubElement(model, f"{{{XF}}}submission")
        sub.set("method", "post")
    sub.set("base64RsaPublicKey", public_key)
    return etree.tostring(doc, xml_declaration=True, encoding="utf-8")


def _publish_encrypted(session: Session, store: BlobStore, form: Form, row: ManagedKey, user: User | None
                       ) -> FormVersion:
    from app.services import forms as form_service
    from app.services.forms import xmlutil

    current = form.current_version
    assert current is not None
    stamp = base64.b64encode(struct.pack(">Q", int(time.time() * 1000))).decode().rstrip("=")
    version = f"{current.version}[encrypted:{stamp}]"
    xml = xmlutil.set_form_version(inject_public_key(current.xml, row.public_key), version)
    # The same publish path as an upload (attachments carried over, SQL views refreshed); validated
    # already when the unencrypted version was published.
    result = form_service.publish_form(session, store, project_id=form.project_id, data=xml,
                                       filename=f"{form.xml_form_id}.xml", user=user, validate=False)
    return result.version


def managed_public_key(session: Session, project_id: int, form_id: str, schema: FormSchema) -> str | None:
    """At publish: the public key to inject into a new version (None: no managed key applies)."""
    if schema.entity is not None or schema.encrypted:
        return None
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == form_id))
    row = form_key(session, form) if form is not None else project_key(session, project_id)
    return row.public_key if row is not None else None


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


# ---- decryption for exports ---------------------------------------------------------------------------

@dataclass
class DecryptIssue:
    instance_id: str
    code: str
    message: str


class ExportDecryptor:
    """Plugged into an export Plan (plan.decryptor): decrypts each encrypted record on the fly,
    checks its signature, lays its values out like a stored submission and keeps decrypted media
    in a private temporary folder (removed by close()). A record that fails (wrong key, damaged or
    missing part, bad signature) stays in the export as "not decrypted" and is listed in `issues`."""

    def __init__(self, plan: Any, store: BlobStore, private_key: rsa.RSAPrivateKey,
                 on_issue: Callable[[DecryptIssue], None] | None = None) -> None:
        self.plan, self.store, self.private_key = plan, store, private_key
        self.issues: list[DecryptIssue] = []
        self.decrypted = 0
        self.on_issue = on_issue
        self.tmp = tempfile.mkdtemp(prefix="carefile-decrypt-")
        os.chmod(self.tmp, 0o700)
        self._n = 0

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _fail(self, rec: Any, code: str, message: str) -> Any:
        issue = DecryptIssue(rec.key, code, message)
        self.issues.append(issue)
        if self.on_issue is not None:
            self.on_issue(issue)
        return rec

    def __call__(self, conn: Any, vid: int, rec: Any) -> Any:
        V, A = SubmissionVersion, SubmissionAttachment
        row = conn.execute(select(V.xml, V.form_version_id).where(V.id == vid)).first()
        if row is None:
            return rec
        manifest_xml, fv_id = row
        try:
            manifest = parse_manifest(bytes(manifest_xml))
            blobs = dict(conn.execute(select(A.name, A.blob_key).where(A.version_id == vid)).all())
            dec = RecordDecryptor(self.private_key, manifest)
            media: list[tuple[str, str]] = []
            xml = b""
            for i, name in enumerate(manifest.files):
                key = blobs.get(name)
                if not key:
                    raise EncryptionError("missing_part", f"The encrypted file '{name}' has not arrived yet.")
                try:
                    src = self.store.open(key)
                except BlobNotFound as err:
                    raise EncryptionError("missing_part", f"The encrypted file '{name}' is missing from "
                                                          "storage.") from err
                with src:
                    if i == len(manifest.files) - 1:
                        buf = io.BytesIO()
                        dec.decrypt(i, src, buf)
                        xml = buf.getvalue()
                    else:
                        self._n += 1
                        path = os.path.join(self.tmp, f"{self._n}")
                        with open(path, "wb") as dst:
                            dec.decrypt(i, src, dst)
                        media.append((plain_name(name), f"decrypted:{path}"))
            dec.verify()
        except EncryptionError as err:
            return self._fail(rec, err.code, err.message)
        schema = self.plan.schemas.get(fv_id)
        if schema is None:
            return self._fail(rec, "unknown_version", "The record's form version is not part of this export.")
        try:
            _env, tree = parse_submission(xml, max_bytes=max(len(xml), 1))
        except SubmissionXMLError as err:
            return self._fail(rec, "bad_xml", f"The decrypted form data is not valid XML: {err.message}")
        data = extract(tree, schema)
        from app.services.submissions.ingest import region_of

        region = region_of(data.values) or rec.meta[10] or None
        if not access.sees_region(self.plan.user, region):
            return None  # decrypted, but about a child outside the user's regions: not exported
        if self.plan.options.region and not (region or "").startswith(self.plan.options.region):
            return None
        self.decrypted += 1
        out = self.plan.decrypted_record(rec, dict(data.values), list(data.repeat_rows),
                                         media if self.plan.options.media else [])
        if region and region != rec.meta[10]:
            out.meta = out.meta[:10] + (region,)
        return out



def write_decrypted_csvzip(session: Session, store: BlobStore, plan: Any, private_key: rsa.RSAPrivateKey, out: Any,
                           on_issue: Callable[[DecryptIssue], None] | None = None) -> ExportDecryptor:
    """The CSV zip of `plan` (same layout as the normal export) with encrypted records decrypted."""
    from app.services.exports.csvzip import write_csvzip

    dec = ExportDecryptor(plan, store, private_key, on_issue)
    plan.decryptor = dec
    try:
        write_csvzip(plan, session, out, store)  # one process: the key never leaves this one
    finally:
        dec.close()
    return dec


def stream_decrypted_csvzip(session: Session, store: BlobStore, plan: Any, private_key: rsa.RSAPrivateKey
                            ) -> Iterator[bytes]:
    """The decrypted CSV zip as byte chunks (web and API downloads; nothing decrypted is stored)."""
    from app.services.exports.csvzip import stream_csvzip

    dec = ExportDecryptor(plan, store, private_key)
    plan.decryptor = dec
    try:
        yield from stream_csvzip(plan, session, store)
    finally:
        dec.close()


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


def private_key_for_export(session: Session, form: Form, passphrase: str) -> rsa.RSAPrivateKey:
    """The managed private key of `form`, unlocked with the passphrase (Problem if none or wrong)."""
    row = form_key(session, form)
    if row is None:
        raise Problem(400, "400.84", f"The form '{form.xml_form_id}' has no managed encryption key on this server. "
                      "If it was encrypted with your own key, decrypt with `carefile export --private-key`.")
    return unlock(row, passphrase)


def keys_json(session: Session, form: Form) -> list[dict[str, Any]]:
    """Central's `submissions/keys` shape: the form's managed key, if any ([] for self-supplied keys,
    which the server never holds)."""
    row = form_key(session, form)
    if row is None or form.current_version is None:
        return []
    return [{"id": row.id, "public": row.public_key, "managed": True, "hint": row.hint or None}]
