"""A test-only ODK Collect encryptor written from the spec (ODK XForms "Encryption"; docs/odk-protocol.md, *Form encryption*).

It is deliberately independent of forms/encryption.py: OAEP padding (SHA-256 label hash, MGF1 with
SHA-256) and the RSA operation are done by hand with Python integers, AES-256-CFB (128-bit feedback)
by hand on top of single-block AES-ECB, PKCS#7 by hand. If the project's decryption chose another
OAEP hash, MGF1 hash or CFB segment size, these tests would fail.
"""
from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def _mgf1_sha256(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def oaep_encrypt(pub: rsa.RSAPublicKey, message: bytes) -> bytes:
    """RSAES-OAEP (RFC 8017 §7.1.1) with SHA-256 and MGF1-SHA-256, empty label."""
    numbers = pub.public_numbers()
    k = (numbers.n.bit_length() + 7) // 8
    h_len = 32
    l_hash = hashlib.sha256(b"").digest()
    ps = b"\x00" * (k - len(message) - 2 * h_len - 2)
    db = l_hash + ps + b"\x01" + message
    seed = os.urandom(h_len)
    masked_db = _xor(db, _mgf1_sha256(seed, k - h_len - 1))
    masked_seed = _xor(seed, _mgf1_sha256(masked_db, h_len))
    em = b"\x00" + masked_seed + masked_db
    c = pow(int.from_bytes(em, "big"), numbers.e, numbers.n)
    return c.to_bytes(k, "big")


def pkcs7(data: bytes) -> bytes:
    n = 16 - len(data) % 16
    return data + bytes([n]) * n


def aes_cfb128_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """CFB with 128-bit segments: C_i = P_i xor AES(C_{i-1}), C_0 = IV (plaintext already padded)."""
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - one block at a time, by design
    prev, out = iv, b""
    for i in range(0, len(plaintext), 16):
        block = _xor(plaintext[i:i + 16], ecb.update(prev))
        out += block
        prev = block
    return out


def iv_sequence(instance_id: str, key: bytes, count: int) -> list[bytes]:
    seed = list(hashlib.md5(instance_id.encode() + key).digest())
    result = []
    for k in range(count):
        seed[k % 16] = (seed[k % 16] + 1) % 256
        result.append(bytes(seed))
    return result


@dataclass
class EncryptedRecord:
    manifest: bytes
    files: dict[str, bytes] = field(default_factory=dict)  # "<name>.enc" and "submission.xml.enc" → bytes


def encrypt_record(pub: rsa.RSAPublicKey, *, form_id: str, version: str, instance_id: str, xml: bytes,
                   media: dict[str, bytes] | None = None, namespace: str = "http://www.opendatakit.org/xforms/encrypted",
                   sign: bool = True) -> EncryptedRecord:
    """What Collect uploads for one record: the manifest and the encrypted parts."""
    media = media or {}
    key = os.urandom(32)
    enc_key = base64.b64encode(oaep_encrypt(pub, key)).decode()
    ivs = iv_sequence(instance_id, key, len(media) + 1)
    files: dict[str, bytes] = {}
    lines = [form_id] + ([version] if version else []) + [enc_key, instance_id]
    for i, (name, data) in enumerate(media.items()):
        files[f"{name}.enc"] = aes_cfb128_encrypt(key, ivs[i], pkcs7(data))
        lines.append(f"{name}::{hashlib.md5(data).hexdigest()}")
    files["submission.xml.enc"] = aes_cfb128_encrypt(key, ivs[len(media)], pkcs7(xml))
    lines.append(f"submission.xml::{hashlib.md5(xml).hexdigest()}")
    digest = hashlib.md5("".join(f"{ln}\n" for ln in lines).encode()).digest()
    signature = base64.b64encode(oaep_encrypt(pub, digest)).decode() if sign else "no"
    version_attr = f' version="{version}"' if version else ""
    media_xml = "".join(f"<media><file>{n}.enc</file></media>" for n in media)
    manifest = (f'<?xml version="1.0" encoding="UTF-8"?>\n<data xmlns="{namespace}" id="{form_id}"{version_attr} '
                f'encrypted="yes"><base64EncryptedKey>{enc_key}</base64EncryptedKey>'
                f'<orx:meta xmlns:orx="http://openrosa.org/xforms"><orx:instanceID>{instance_id}</orx:instanceID>'
                f'</orx:meta>{media_xml}<encryptedXmlFile>submission.xml.enc</encryptedXmlFile>'
                f'<base64EncryptedElementSignature>{signature}</base64EncryptedElementSignature></data>')
    return EncryptedRecord(manifest.encode(), files)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


ENC_FORM_MD = """
| settings |
| | form_id | version | form_title | public_key |
| | enc_visit | {version} | Encrypted visit | {public_key} |

| survey |
| | type | name | label |
| | text | child_name | Child's name |
| | integer | age | Age |
| | select_one region_village | village | Village |
| | image | photo | Photo |
| | begin repeat | members | Household members |
| | text | member_role | Role |
| | end repeat | | |

| choices |
| | list_name | name | label |
| | region_village | 540102002201 | Village A |
"""


def enc_form_md(public_key_b64: str, version: str = "1") -> str:
    """An XLSForm with a self-supplied public key (settings `public_key`)."""
    return ENC_FORM_MD.format(version=version, public_key=public_key_b64)


def enc_instance(instance_id: str, *, version: str = "1", name: str = "Dolma", photo: str = "photo.jpg",
                 village: str = "540102002201", form_id: str = "enc_visit") -> bytes:
    """The plaintext instance XML Collect would encrypt for ENC_FORM_MD."""
    return (f'<?xml version="1.0"?><data xmlns:orx="http://openrosa.org/xforms" id="{form_id}" '
            f'version="{version}"><child_name>{name}</child_name><age>7</age><village>{village}</village>'
            f"<photo>{photo}</photo><members><member_role>aunt</member_role></members>"
            f"<members><member_role>uncle</member_role></members>"
            f"<meta><instanceID>{instance_id}</instanceID></meta></data>").encode()


def plain_form_md(version: str = "1") -> str:
    """ENC_FORM_MD without a public key (for managed encryption)."""
    return ENC_FORM_MD.replace(" public_key |", "").replace(" {public_key} |", "").format(version=version)


def public_key_of(xform: bytes) -> rsa.RSAPublicKey:
    """The public key in an XForm's <submission base64RsaPublicKey>, as Collect reads it."""
    import re

    from cryptography.hazmat.primitives.serialization import load_der_public_key

    found = re.search(rb'base64RsaPublicKey="([A-Za-z0-9+/=]+)"', xform)
    assert found, "the form has no public key"
    key = load_der_public_key(base64.b64decode(found.group(1)))
    assert isinstance(key, rsa.RSAPublicKey)
    return key
