"""Encrypted submissions in exports: the status without a key, and decryption with a self-supplied
private key (`carefile export --private-key`): right key, wrong key, a corrupt part, a missing part."""
from __future__ import annotations

import csv
import io
import zipfile
from io import BytesIO
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from forms.encryption import public_key_base64
from tests.support.cli import cli_runner
from tests.support.odk_encrypt import enc_form_md, enc_instance, encrypt_record, new_key

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 30
GOOD, WRONG, CORRUPT, MISSING = (f"uuid:00000000-0000-4000-8000-00000000000{i}" for i in range(1, 5))


@pytest.fixture(scope="module")
def keys() -> tuple[Any, Any]:
    return new_key(), new_key()


def post(collect: Any, manifest: bytes, parts: dict[str, bytes]) -> None:
    def body() -> dict[str, Any]:
        data: dict[str, Any] = {"xml_submission_file": (BytesIO(manifest), "submission.xml", "text/xml")}
        data.update({n: (BytesIO(c), n, "application/octet-stream") for n, c in parts.items()})
        return data
    resp = collect.post("/v1/projects/1/submission", data=body, content_type="multipart/form-data")
    assert resp.status_code == 201, resp.data


@pytest.fixture
def records(publish: Any, collect: Any, keys: tuple[Any, Any]) -> None:
    """Four encrypted records: decryptable; encrypted for another key; a damaged photo; the XML not sent."""
    key, other = keys
    publish(enc_form_md(public_key_base64(key.public_key())))
    good = encrypt_record(key.public_key(), form_id="enc_visit", version="1", instance_id=GOOD,
                          xml=enc_instance(GOOD), media={"photo.jpg": PHOTO})
    post(collect, good.manifest, good.files)
    wrong = encrypt_record(other.public_key(), form_id="enc_visit", version="1", instance_id=WRONG,
                           xml=enc_instance(WRONG, name="Pema"))
    post(collect, wrong.manifest, wrong.files)
    bad = encrypt_record(key.public_key(), form_id="enc_visit", version="1", instance_id=CORRUPT,
                         xml=enc_instance(CORRUPT, name="Norbu"), media={"photo.jpg": PHOTO})
    damaged = bytearray(bad.files["photo.jpg.enc"])
    damaged[100] ^= 1
    bad.files["photo.jpg.enc"] = bytes(damaged)
    post(collect, bad.manifest, bad.files)
    missing = encrypt_record(key.public_key(), form_id="enc_visit", version="1", instance_id=MISSING,
                             xml=enc_instance(MISSING, name="Lhamo"))
    post(collect, missing.manifest, {})


def read_zip(data: bytes) -> tuple[dict[str, list[dict[str, str]]], dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        csvs = {n: list(csv.DictReader(io.StringIO(zf.read(n).decode("utf-8-sig"), newline="")))
                for n in zf.namelist() if n.endswith(".csv")}
        media = {n: zf.read(n) for n in zf.namelist() if n.startswith("media/")}
    return csvs, media


def test_without_key_exports_show_metadata_and_status(app: Any, rt: Any, records: None) -> None:
    from app.models import User
    from app.services.exports import ExportOptions
    from app.services.exports.csvzip import write_csvzip
    from app.services.exports.jsonexport import write_json
    from app.services.exports.tabular import plan_for

    admin = User(username="a", role="admin", active=True, project_id=1)
    with rt.db.session() as s:
        buf = io.BytesIO()
        write_csvzip(plan_for(s, 1, "enc_visit", admin, ExportOptions.parse({})), s, buf, rt.store)
        jbuf = io.BytesIO()
        write_json(plan_for(s, 1, "enc_visit", admin, ExportOptions.parse({"format": "json"})), s, jbuf)
    csvs, _ = read_zip(buf.getvalue())
    rows = {r["KEY"]: r for r in csvs["enc_visit.csv"]}
    assert {k: r["Status"] for k, r in rows.items()} == {
        GOOD: "not decrypted", WRONG: "not decrypted", CORRUPT: "not decrypted",
        MISSING: "missing encrypted form data"}
    assert rows[GOOD]["child_name"] == "" and rows[GOOD]["AttachmentsExpected"] == "2"
    assert rows[MISSING]["AttachmentsPresent"] == "0" and rows[MISSING]["AttachmentsExpected"] == "1"
    import json

    subs = {s["__id"]: s["__system"]["status"] for s in json.loads(jbuf.getvalue())["submissions"]}
    assert subs[GOOD] == "notDecrypted" and subs[MISSING] == "missingEncryptedFormData"


def test_cli_export_with_private_key_decrypts_and_reports_each_bad_record(
        app_config: Any, monkeypatch: Any, capsys: Any, tmp_path: Any, records: None, keys: tuple[Any, Any]) -> None:
    key, _ = keys
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    out = tmp_path / "enc.zip"
    cli = cli_runner(app_config, monkeypatch, capsys)
    code, stdout, stderr = cli("export", "enc_visit", "--private-key", str(pem), "--output", str(out))
    assert code == 1  # some records could not be decrypted; the file is written all the same
    assert "1 record(s) decrypted, 2 not decrypted" in stdout
    lines = {ln.split(":", 2)[1]: ln for ln in stderr.splitlines() if ln.startswith("uuid:")}
    assert "private key" in lines[WRONG.split(":", 1)[1]]
    assert "signature" in lines[CORRUPT.split(":", 1)[1]] or "damaged" in lines[CORRUPT.split(":", 1)[1]]
    csvs, media = read_zip(out.read_bytes())
    rows = {r["KEY"]: r for r in csvs["enc_visit.csv"]}
    assert set(rows) == {GOOD, WRONG, CORRUPT, MISSING}
    assert rows[GOOD]["child_name"] == "Dolma" and rows[GOOD]["village"] == "540102002201"
    assert rows[GOOD]["Status"] == "" and rows[GOOD]["photo"] == "photo.jpg"
    assert rows[WRONG]["Status"] == "not decrypted" and rows[WRONG]["child_name"] == ""
    assert rows[CORRUPT]["Status"] == "not decrypted" and rows[CORRUPT]["child_name"] == ""
    assert rows[MISSING]["Status"] == "missing encrypted form data"
    members = csvs["enc_visit-members.csv"]
    assert [(m["member_role"], m["PARENT_KEY"], m["KEY"]) for m in members] == [
        ("aunt", GOOD, f"{GOOD}/members[1]"), ("uncle", GOOD, f"{GOOD}/members[2]")]
    assert media == {"media/photo.jpg": PHOTO}  # the damaged record's photo is not exported


def test_cli_export_with_an_unrelated_key_writes_metadata_only(
        app_config: Any, monkeypatch: Any, capsys: Any, tmp_path: Any, records: None) -> None:
    pem = tmp_path / "other.pem"
    pem.write_bytes(new_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    out = tmp_path / "enc.zip"
    code, stdout, stderr = cli_runner(app_config, monkeypatch, capsys)(
        "export", "enc_visit", "--private-key", str(pem), "--output", str(out))
    assert code == 1 and "0 record(s) decrypted, 3 not decrypted" in stdout
    assert stderr.count("private key") == 3
    csvs, media = read_zip(out.read_bytes())
    assert len(csvs["enc_visit.csv"]) == 4 and media == {}


def test_cli_export_refuses_a_file_that_is_not_a_key(app_config: Any, monkeypatch: Any, capsys: Any,
                                                     tmp_path: Any, records: None) -> None:
    bad = tmp_path / "notakey.pem"
    bad.write_text("hello")
    code, _, stderr = cli_runner(app_config, monkeypatch, capsys)(
        "export", "enc_visit", "--private-key", str(bad), "--output", str(tmp_path / "x.zip"))
    assert code == 1 and "private key" in stderr and not (tmp_path / "x.zip").exists()


def test_cli_export_decrypts_a_record_whose_photo_has_not_arrived(
        app_config: Any, monkeypatch: Any, capsys: Any, tmp_path: Any, publish: Any, collect: Any,
        keys: tuple[Any, Any]) -> None:
    """Issue 20, item 9: real Collect output puts the XML last (file index 1 after one photo); when only
    the XML part has arrived the answers are decrypted, as Central does, and the missing photo reported."""
    key, _ = keys
    publish(enc_form_md(public_key_base64(key.public_key())))
    late = encrypt_record(key.public_key(), form_id="enc_visit", version="1", instance_id=GOOD,
                          xml=enc_instance(GOOD), media={"photo.jpg": PHOTO})
    assert list(late.files) == ["photo.jpg.enc", "submission.xml.enc"]
    post(collect, late.manifest, {"submission.xml.enc": late.files["submission.xml.enc"]})
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    out = tmp_path / "enc.zip"
    cli = cli_runner(app_config, monkeypatch, capsys)
    code, stdout, stderr = cli("export", "enc_visit", "--private-key", str(pem), "--output", str(out))
    assert code == 0, stderr
    assert "1 record(s) decrypted (1 with attachments not yet arrived), 0 not decrypted" in stdout
    assert f"{GOOD}: decrypted, attachment missing: " in stderr and "photo.jpg" in stderr
    csvs, media = read_zip(out.read_bytes())
    (row,) = csvs["enc_visit.csv"]
    assert row["child_name"] == "Dolma" and row["Status"] == "" and row["photo"] == "photo.jpg"
    assert row["AttachmentsPresent"] == "1" and row["AttachmentsExpected"] == "2"
    assert media == {}
    # the photo arrives (the next part of the split submission): now complete, signature checked
    post(collect, late.manifest, {"photo.jpg.enc": late.files["photo.jpg.enc"]})
    code, stdout, _ = cli("export", "enc_visit", "--private-key", str(pem), "--output", str(out))
    assert code == 0 and "1 record(s) decrypted, 0 not decrypted" in stdout
    assert read_zip(out.read_bytes())[1] == {"media/photo.jpg": PHOTO}
