"""Encrypted submissions from ODK Collect: manifest + .enc parts are stored, nothing is discarded."""
from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Submission, SubmissionAttachment, SubmissionVersion
from forms.encryption import public_key_base64
from tests.support.odk_encrypt import enc_form_md, enc_instance, encrypt_record, new_key

IID = "uuid:0e5c7a52-7f0b-4d5e-9a3e-1b2c3d4e5f60"
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20


@pytest.fixture(scope="module")
def key() -> Any:
    return new_key()


@pytest.fixture
def enc_form(publish: Any, key: Any) -> Any:
    return publish(enc_form_md(public_key_base64(key.public_key())))


def _post(collect: Any, manifest: bytes, parts: dict[str, bytes], extra: dict[str, str] | None = None) -> Any:
    def body() -> dict[str, Any]:  # a factory: the Digest client sends the body twice
        data: dict[str, Any] = {"xml_submission_file": (BytesIO(manifest), "submission.xml", "text/xml")}
        for name, content in parts.items():
            data[name] = (BytesIO(content), name, "application/octet-stream")
        data.update(extra or {})
        return data
    return collect.post("/v1/projects/1/submission", data=body, content_type="multipart/form-data")


def _stored(rt: Any) -> tuple[Any, list[tuple[str, bytes | None]]]:
    with rt.db.session() as s:
        sub = s.scalars(select(Submission)).one()
        ver = s.get(SubmissionVersion, sub.current_version_id)
        atts = list(s.scalars(select(SubmissionAttachment).where(SubmissionAttachment.version_id == ver.id)
                              .order_by(SubmissionAttachment.id)))
        out = []
        for a in atts:
            if a.blob_key is None:
                out.append((a.name, None))
            else:
                with rt.store.open(a.blob_key) as fh:
                    out.append((a.name, fh.read()))
        s.expunge_all()
        return (sub, ver), out


def test_publishing_with_public_key_marks_the_form_encrypted(enc_form: Any, key: Any) -> None:
    assert b"base64RsaPublicKey" in enc_form.version.xml


def test_encrypted_submission_keeps_manifest_and_every_part_in_manifest_order(
        enc_form: Any, collect: Any, rt: Any, key: Any) -> None:
    rec = encrypt_record(key.public_key(), form_id="enc_visit", version="1", instance_id=IID,
                         xml=enc_instance(IID), media={"photo.jpg": PHOTO, "audio.m4a": b"sound"})
    parts = dict(rec.files)
    parts["photo.jpg"] = PHOTO  # a plaintext leftover Collect may send after an interrupted encryption
    resp = _post(collect, rec.manifest, parts)
    assert resp.status_code == 201, resp.data
    (sub, ver), atts = _stored(rt)
    assert [n for n, _ in atts] == ["photo.jpg.enc", "audio.m4a.enc", "submission.xml.enc"]
    assert dict(atts) == rec.files  # the encrypted bytes exactly as sent; the plaintext leftover is not kept
    assert ver.xml == rec.manifest and ver.encrypted_file == "submission.xml.enc"
    assert ver.data == {} and sub.instance_id == IID
    assert sub.region_code == "540102"  # from the collector's region: the answers are unreadable


def test_split_encrypted_upload_is_merged(enc_form: Any, collect: Any, rt: Any, key: Any) -> None:
    rec = encrypt_record(key.public_key(), form_id="enc_visit", version="1", instance_id=IID,
                         xml=enc_instance(IID), media={"photo.jpg": PHOTO})
    first = _post(collect, rec.manifest, {"photo.jpg.enc": rec.files["photo.jpg.enc"]}, {"*isIncomplete*": "yes"})
    assert first.status_code == 201, first.data
    _, atts = _stored(rt)
    assert atts == [("photo.jpg.enc", rec.files["photo.jpg.enc"]), ("submission.xml.enc", None)]
    second = _post(collect, rec.manifest, {"submission.xml.enc": rec.files["submission.xml.enc"]})
    assert second.status_code == 201, second.data
    _, atts = _stored(rt)
    assert dict(atts) == rec.files
    with rt.db.session() as s:
        assert len(s.scalars(select(Submission)).all()) == 1


def test_spec_namespace_manifest_is_recognised(enc_form: Any, collect: Any, rt: Any, key: Any) -> None:
    rec = encrypt_record(key.public_key(), form_id="enc_visit", version="1", instance_id=IID,
                         xml=enc_instance(IID), namespace="http://opendatakit.org/submissions")
    assert _post(collect, rec.manifest, rec.files).status_code == 201
    _, atts = _stored(rt)
    assert atts == [("submission.xml.enc", rec.files["submission.xml.enc"])]


def test_encrypted_submission_without_instance_id_is_refused(enc_form: Any, collect: Any, rt: Any) -> None:
    manifest = (b'<data xmlns="http://www.opendatakit.org/xforms/encrypted" id="enc_visit" version="1" '
                b'encrypted="yes"><base64EncryptedKey>AAAA</base64EncryptedKey>'
                b'<encryptedXmlFile>submission.xml.enc</encryptedXmlFile></data>')
    resp = _post(collect, manifest, {"submission.xml.enc": b"x" * 32})
    assert resp.status_code == 400
    assert b"instanceID" in resp.data
    with rt.db.session() as s:
        assert s.scalars(select(Submission)).first() is None
