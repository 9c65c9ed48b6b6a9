"""forms.encryption against an independent encryptor written from the spec (tests/support/odk_encrypt.py)."""
from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives import serialization

from forms.encryption import (
    EncryptionError,
    RecordDecryptor,
    load_private_key,
    parse_manifest,
    public_key_base64,
)
from tests.support.odk_encrypt import encrypt_record, new_key

XML = ('<?xml version="1.0"?><data id="enc_form" version="3"><name>卓玛</name><photo>face.jpg</photo>'
       '<meta><instanceID>uuid:6b1f0f6e-1111-4c3a-9a55-0d7c4a2b9e01</instanceID></meta></data>').encode()
IID = "uuid:6b1f0f6e-1111-4c3a-9a55-0d7c4a2b9e01"


@pytest.fixture(scope="module")
def key():  # one 2048-bit key per module: generating keys is slow
    return new_key()


def _decrypt_all(private_key, record):
    manifest = parse_manifest(record.manifest)
    dec = RecordDecryptor(private_key, manifest)
    out = []
    for i, name in enumerate(manifest.files):
        buf = io.BytesIO()
        dec.decrypt(i, io.BytesIO(record.files[name]), buf)
        out.append(buf.getvalue())
    dec.verify()
    return manifest, out


@pytest.mark.parametrize("namespace", ["http://www.opendatakit.org/xforms/encrypted",
                                       "http://opendatakit.org/submissions"])
def test_right_key_decrypts_media_and_xml_and_verifies_signature(key, namespace):
    photo = bytes(range(256)) * 300 + b"tail"  # not a multiple of 16, spans several read chunks
    rec = encrypt_record(key.public_key(), form_id="enc_form", version="3", instance_id=IID, xml=XML,
                         media={"face.jpg": photo, "voice.m4a": b"x" * 16}, namespace=namespace)
    manifest, (face, voice, xml) = _decrypt_all(key, rec)
    assert manifest.files == ("face.jpg.enc", "voice.m4a.enc", "submission.xml.enc")
    assert manifest.form_id == "enc_form" and manifest.version == "3" and manifest.instance_id == IID
    assert (face, voice, xml) == (photo, b"x" * 16, XML)


def test_no_version_and_no_media(key):
    rec = encrypt_record(key.public_key(), form_id="enc_form", version="", instance_id=IID, xml=XML)
    manifest, (xml,) = _decrypt_all(key, rec)
    assert manifest.version == "" and xml == XML


def test_wrong_key_is_reported_as_such(key):
    rec = encrypt_record(key.public_key(), form_id="enc_form", version="3", instance_id=IID, xml=XML)
    with pytest.raises(EncryptionError) as err:
        RecordDecryptor(new_key(), parse_manifest(rec.manifest))
    assert err.value.code == "wrong_key"
    assert "private key" in err.value.message


def test_corrupt_part_fails_padding_or_signature(key):
    rec = encrypt_record(key.public_key(), form_id="enc_form", version="3", instance_id=IID, xml=XML,
                         media={"face.jpg": b"photo bytes " * 100})
    damaged = bytearray(rec.files["face.jpg.enc"])
    damaged[40] ^= 0x55  # a byte in the middle: CFB decrypts, but the content (and its md5) changes
    rec.files["face.jpg.enc"] = bytes(damaged)
    with pytest.raises(EncryptionError) as err:
        _decrypt_all(key, rec)
    assert err.value.code == "bad_signature"

    rec.files["face.jpg.enc"] = rec.files["face.jpg.enc"][:-5]  # truncated
    manifest = parse_manifest(rec.manifest)
    with pytest.raises(EncryptionError) as err2:
        RecordDecryptor(key, manifest).decrypt(0, io.BytesIO(rec.files["face.jpg.enc"]), io.BytesIO())
    assert err2.value.code == "corrupt_file"


def test_part_from_another_record_is_caught_by_padding_or_signature(key):
    a = encrypt_record(key.public_key(), form_id="enc_form", version="3", instance_id=IID, xml=XML)
    b = encrypt_record(key.public_key(), form_id="enc_form", version="3", instance_id=IID, xml=XML + b" ")
    a.files["submission.xml.enc"] = b.files["submission.xml.enc"]
    with pytest.raises(EncryptionError) as err:
        _decrypt_all(key, a)
    assert err.value.code in ("corrupt_file", "bad_signature")


def test_unsigned_record_is_not_verified(key):
    rec = encrypt_record(key.public_key(), form_id="enc_form", version="3", instance_id=IID, xml=XML, sign=False)
    with pytest.raises(EncryptionError) as err:
        _decrypt_all(key, rec)
    assert err.value.code == "bad_signature"


def test_manifest_rejects_unsafe_names_and_missing_key():
    with pytest.raises(EncryptionError):
        parse_manifest(b'<data id="f"><base64EncryptedKey>AA==</base64EncryptedKey>'
                       b'<encryptedXmlFile>../x.enc</encryptedXmlFile></data>')
    with pytest.raises(EncryptionError) as err:
        parse_manifest(b'<data id="f"><name>x</name></data>')
    assert err.value.code == "not_encrypted"


def test_keys_load_from_pem_and_public_key_is_spki_base64(key):
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    loaded = load_private_key(pem)
    assert loaded.private_numbers() == key.private_numbers()
    b64 = public_key_base64(key.public_key())
    assert b64.startswith("MIIBIjAN")  # what pyxform / Central put into base64RsaPublicKey for RSA-2048
    with pytest.raises(EncryptionError) as err:
        load_private_key(b"not a key")
    assert err.value.code == "bad_private_key"
