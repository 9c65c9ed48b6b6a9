"""Decrypting encrypted submissions for exports (managed passphrase or a self-supplied private key).

Plugged into an export Plan, `ExportDecryptor` decrypts each encrypted record on the fly while the
CSV zip is written; nothing decrypted is stored (media go to a private temporary folder removed at
the end).
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import SubmissionAttachment, SubmissionVersion
from app.services import access
from app.services.exports.csvzip import stream_csvzip, write_csvzip
from app.services.regions import of_answers as region_of
from forms import SubmissionXMLError, extract, parse_submission
from forms.encryption import EncryptionError, RecordDecryptor, parse_manifest, plain_name
from storage import BlobNotFound, BlobStore


@dataclass
class DecryptIssue:
    instance_id: str
    code: str
    message: str
    decrypted: bool = False  # True: the record was decrypted, something of it is missing (a late photo)


class ExportDecryptor:
    """Plugged into an export Plan (plan.decryptor): decrypts each encrypted record on the fly,
    checks its signature, lays its values out like a stored submission and keeps decrypted media
    in a private temporary folder (removed by close()). A record that fails (wrong key, damaged or
    missing XML part, bad signature) stays in the export as "not decrypted" and is listed in `issues`.
    A record whose XML part has arrived but a media file has not is decrypted (as Central does) and the
    missing file is listed in `notes`; its signature, which covers every file, is checked once all have
    arrived."""

    def __init__(self, plan: Any, store: BlobStore, private_key: rsa.RSAPrivateKey,
                 on_issue: Callable[[DecryptIssue], None] | None = None) -> None:
        self.plan, self.store, self.private_key = plan, store, private_key
        self.issues: list[DecryptIssue] = []
        self.notes: list[DecryptIssue] = []
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
            missing: list[str] = []
            xml = b""
            last = len(manifest.files) - 1
            for i, name in enumerate(manifest.files):
                key = blobs.get(name)
                try:
                    if not key:
                        raise EncryptionError("missing_part", f"The encrypted file '{name}' has not arrived yet.")
                    try:
                        src = self.store.open(key)
                    except BlobNotFound as err:
                        raise EncryptionError("missing_part", f"The encrypted file '{name}' is missing from "
                                                              "storage.") from err
                except EncryptionError:
                    if i == last:  # the form data itself: nothing to decrypt
                        raise
                    missing.append(plain_name(name))  # a media file: the answers are still readable
                    continue
                with src:
                    if i == last:
                        buf = io.BytesIO()
                        dec.decrypt(i, src, buf)
                        xml = buf.getvalue()
                    else:
                        self._n += 1
                        path = os.path.join(self.tmp, f"{self._n}")
                        with open(path, "wb") as dst:
                            dec.decrypt(i, src, dst)
                        media.append((plain_name(name), f"decrypted:{path}"))
            if not missing:
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
        region = region_of(data.values) or rec.meta[10] or None
        if not access.sees_region(self.plan.user, region):
            return None  # decrypted, but about a child outside the user's regions: not exported
        if self.plan.options.region and not (region or "").startswith(self.plan.options.region):
            return None
        self.decrypted += 1
        if missing:
            note = DecryptIssue(rec.key, "missing_attachment", "Decrypted; not yet arrived: "
                                f"{', '.join(missing)} (the signature is checked once every file is here).", True)
            self.notes.append(note)
            if self.on_issue is not None:
                self.on_issue(note)
        out = self.plan.decrypted_record(rec, dict(data.values), list(data.repeat_rows),
                                         media if self.plan.options.media else [])
        if region and region != rec.meta[10]:
            out.meta = out.meta[:10] + (region,)
        return out



def write_decrypted_csvzip(session: Session, store: BlobStore, plan: Any, private_key: rsa.RSAPrivateKey, out: Any,
                           on_issue: Callable[[DecryptIssue], None] | None = None) -> ExportDecryptor:
    """The CSV zip of `plan` (same layout as the normal export) with encrypted records decrypted."""
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
    dec = ExportDecryptor(plan, store, private_key)
    plan.decryptor = dec
    try:
        yield from stream_csvzip(plan, session, store)
    finally:
        dec.close()
