"""Managed encryption keys (as ODK Central): key pairs whose private half is sealed with a passphrase.

A coordinator turns managed encryption on for one form, or for the whole project, with a passphrase
and a hint. The server generates an RSA-2048 key pair and stores the public key and only an
*encrypted* private key: the PKCS#8 DER private key is sealed with AES-256-GCM under a 32-byte key
derived from the passphrase with scrypt (N=2^15, r=8, p=1, 16-byte random salt; the parameters are
stored with the key so they can be raised later). AES-GCM's tag makes a wrong passphrase fail
cleanly. The passphrase is never stored or logged; it is needed again for every decrypting export.
(Central uses PBKDF2-SHA256 with 128,000 iterations and AES-256-CBC; scrypt is memory-hard, so
guessing passphrases from a stolen database costs far more.)

The public key goes into every published version of an encrypted form (`inject_public_key`, at
publish: `managed_public_key`).
"""
from __future__ import annotations

import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import problems
from app.db import Database
from app.models import Form, ManagedKey, User
from app.services.identity import signin
from forms import FormSchema, safe_parse
from forms.encryption import public_key_base64

KDF_N, KDF_R, KDF_P = 2**15, 8, 1
MIN_PASSPHRASE = 10
XF = "http://www.w3.org/2002/xforms"


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
        raise problems.NO_SUCH_ENCRYPTION_KEY(key_id=key_id)
    return row


def unlock(db: Database, row: ManagedKey, passphrase: str, who: str) -> rsa.RSAPrivateKey:
    """The private key of a managed key; Problem 400 if the passphrase is wrong. Guesses are throttled per
    guesser (`who`: "user:<id>", or "cli" for the command line) and key, as wrong passwords are
    (signin.guard: 5 free, then waits from 1 to 15 minutes; 429.1), and each costs the server one scrypt."""
    return signin.guard(db, f"managed-key:{row.id}", who, lambda: _open(row, passphrase), what="passphrase")


def _open(row: ManagedKey, passphrase: str) -> rsa.RSAPrivateKey:
    try:
        secret = _derive(passphrase or "", row.kdf_salt, row.kdf_n, row.kdf_r, row.kdf_p)
        der = AESGCM(secret).decrypt(row.nonce, row.private_key, _aad(row))
    except InvalidTag as err:
        hint = f" Hint: {row.hint}" if row.hint else ""
        raise problems.PASSPHRASE_WRONG(hint=hint) from err
    key = serialization.load_der_private_key(der, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def check_encryptable(form: Form, schema: FormSchema) -> None:
    if schema.entity is not None:
        raise problems.ENTITY_FORM_NOT_ENCRYPTABLE(xml_form_id=form.xml_form_id)


def new_key(session: Session, project_id: int, form_id: int | None, passphrase: str, hint: str,
             user: User | None) -> ManagedKey:
    if len(passphrase or "") < MIN_PASSPHRASE:
        raise problems.PASSPHRASE_TOO_SHORT(min_passphrase=MIN_PASSPHRASE)
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


def inject_public_key(xml: bytes, public_key: str) -> bytes:
    """The XForm with base64RsaPublicKey on its model's <submission> element (added if missing)."""
    doc = safe_parse(xml)  # hardened, and as lenient as submissions (bare &)
    model = next(doc.iter(f"{{{XF}}}model"), None)
    if model is None:
        raise problems.FORM_HAS_NO_MODEL()
    sub = model.find(f"{{{XF}}}submission")
    if sub is None:
        sub = etree.SubElement(model, f"{{{XF}}}submission")
        sub.set("method", "post")
    sub.set("base64RsaPublicKey", public_key)
    return etree.tostring(doc, xml_declaration=True, encoding="utf-8")


def managed_public_key(session: Session, project_id: int, form_id: str, schema: FormSchema) -> str | None:
    """At publish: the public key to inject into a new version (None: no managed key applies)."""
    if schema.entity is not None or schema.encrypted:
        return None
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == form_id))
    row = form_key(session, form) if form is not None else project_key(session, project_id)
    return row.public_key if row is not None else None


def private_key_for_export(db: Database, form: Form, passphrase: str, who: str) -> rsa.RSAPrivateKey:
    """The managed private key of `form`, unlocked with the passphrase (Problem if none or wrong; guesses
    throttled, see unlock). Call it outside a write transaction."""
    with db.reader() as session:
        row = form_key(session, form)
    if row is None:
        raise problems.FORM_NO_MANAGED_ENCRYPTION_KEY(xml_form_id=form.xml_form_id)
    return unlock(db, row, passphrase, who)


def keys_json(session: Session, form: Form) -> list[dict[str, Any]]:
    """Central's `submissions/keys` shape: the form's managed key, if any ([] for self-supplied keys,
    which the server never holds)."""
    row = form_key(session, form)
    if row is None or form.current_version is None:
        return []
    return [{"id": row.id, "public": row.public_key, "managed": True, "hint": row.hint or None}]
