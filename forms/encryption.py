"""ODK form encryption: the submission manifest and record decryption (no web framework, no database).

What ODK Collect does for a form whose ``<submission>`` element carries ``base64RsaPublicKey``
(ODK XForms spec, "Encryption"; Collect ``EncryptionUtils``; Central ``lib/util/crypto.js``):

- It draws a random 256-bit AES key per record and wraps it with the form's RSA public key using
  ``RSA/NONE/OAEPWithSHA256AndMGF1Padding``. With Collect's (Bouncy Castle) provider that means
  OAEP with SHA-256 as the label hash **and** SHA-256 for MGF1 (not the SunJCE default MGF1-SHA1);
  Central's own decoder (``unpadPkcs1OaepMgf1Sha256``) and its test encryptor use the same. The
  wrapped key is the manifest's ``base64EncryptedKey``.
- Each file (every media file in manifest order, then the instance XML last) is encrypted with
  AES-256-CFB (128-bit feedback) after PKCS#7 padding to 16 bytes (Java's ``AES/CFB/PKCS5Padding``).
- IVs: ``seed = MD5(UTF-8(instanceID) + aesKey)``; before the k-th file (k = 0, 1, …) the byte
  ``seed[k % 16]`` is incremented (wrapping at 256, cumulative) and the IV is a copy of the seed.
  The instanceID is the whole string, ``uuid:`` included.
- Signature (``base64EncryptedElementSignature``): the lines form id, version (only when the
  manifest has one), base64EncryptedKey, instanceID, then ``<file name without .enc>::<md5 hex of
  the plaintext>`` for each media file and finally the XML, each followed by ``\\n``; the MD5 digest
  of that UTF-8 text is RSA-OAEP-encrypted like the key and base64-encoded. Only the private key
  holder can check it: decrypt it and compare with the digest recomputed from the decrypted files.

The manifest is recognised by its elements' local names, so both the namespace Collect writes
(``http://www.opendatakit.org/xforms/encrypted``) and the spec's (``http://opendatakit.org/submissions``)
are understood, as Central does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from lxml import etree

try:  # cryptography >= 47 keeps CFB among the "decrepit" modes (still needed: ODK specifies it)
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from forms._xml import BadXMLError, UnsafeXMLError, child, elements, local, local_attr, safe_parse

NS_COLLECT = "http://www.opendatakit.org/xforms/encrypted"
NS_SPEC = "http://opendatakit.org/submissions"
ENC_SUFFIX = ".enc"
CHUNK = 64 * 1024

OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class EncryptionError(ValueError):
    """A manifest or an encrypted record cannot be read; ``code`` for programs, ``message`` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Manifest:
    """The plaintext submission manifest Collect sends as ``xml_submission_file``."""

    form_id: str
    version: str                      # "" when the manifest has no version attribute
    instance_id: str | None
    encrypted_key: str                # base64 RSA-wrapped AES key
    media: tuple[str, ...]            # encrypted media file names (".enc"), in manifest order
    xml_file: str                     # the encrypted instance XML (normally "submission.xml.enc")
    signature: str | None             # base64EncryptedElementSignature

    @property
    def files(self) -> tuple[str, ...]:
        """Every encrypted part, in IV order: the media files, then the instance XML."""
        return (*self.media, self.xml_file)


def _child(node: etree._Element, name: str) -> etree._Element | None:
    return child(node, name)


def _text(node: etree._Element | None) -> str:
    return "" if node is None else (node.text or "").strip()


def is_manifest(root: etree._Element) -> bool:
    """Whether a parsed submission root is an encrypted-submission manifest (has base64EncryptedKey)."""
    return _child(root, "base64EncryptedKey") is not None


def read_manifest(root: etree._Element) -> Manifest:
    """The manifest's contents; raises EncryptionError when a required part is missing or unsafe."""
    key = _text(_child(root, "base64EncryptedKey"))
    if not key:
        raise EncryptionError("no_key", "The encrypted submission has no base64EncryptedKey. Send it again "
                                        "from ODK Collect.")
    xml_file = _text(_child(root, "encryptedXmlFile"))
    if not xml_file:
        raise EncryptionError("no_xml_file", "The encrypted submission does not name its encrypted form data "
                                             "(encryptedXmlFile). Send it again from ODK Collect.")
    media: list[str] = []
    for node in elements(root):
        if local(node) == "media":
            name = _text(_child(node, "file"))
            if name:
                media.append(name)
    meta = _child(root, "meta")
    instance_id = _text(_child(meta, "instanceID")) if meta is not None else ""
    instance_id = instance_id or _text(_child(root, "instanceID"))
    signature = _text(_child(root, "base64EncryptedElementSignature")) or None
    for name in (*media, xml_file):
        if "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
            raise EncryptionError("bad_name", f"The encrypted submission names a file '{name}', which is not a "
                                              "plain file name.")
    return Manifest(form_id=(local_attr(root, "id") or "").strip(), version=(local_attr(root, "version") or "").strip(),
                    instance_id=instance_id or None, encrypted_key=key, media=tuple(media), xml_file=xml_file,
                    signature=signature)


def parse_manifest(xml: bytes) -> Manifest:
    """Parse manifest bytes safely (no DOCTYPE) and read it."""
    try:
        root = safe_parse(xml, declare_prefixes=True)
    except (UnsafeXMLError, BadXMLError) as err:
        raise EncryptionError("malformed", "The submission manifest is not well-formed XML.") from err
    if not is_manifest(root):
        raise EncryptionError("not_encrypted", "This submission is not encrypted (no base64EncryptedKey).")
    return read_manifest(root)


def plain_name(enc_name: str) -> str:
    """A file's original name: the encrypted part's name without ``.enc``."""
    return enc_name[: -len(ENC_SUFFIX)] if enc_name.endswith(ENC_SUFFIX) else enc_name


# ---- keys ----------------------------------------------------------------------------------------

def load_private_key(pem: bytes, password: bytes | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or DER bytes."""
    try:
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except ValueError:
            key = serialization.load_der_private_key(pem, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise EncryptionError("bad_private_key", "The private key file could not be read: it must be an RSA "
                                                 f"private key in PEM format ({err}).") from err
    if not isinstance(key, rsa.RSAPrivateKey):
        raise EncryptionError("bad_private_key", "The private key is not an RSA key; ODK encryption uses RSA.")
    return key


def public_key_base64(key: rsa.RSAPublicKey) -> str:
    """The value for ``base64RsaPublicKey``: base64 of the DER SubjectPublicKeyInfo (a PEM body)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise EncryptionError("corrupt_manifest", f"The record's {what} is not valid base64.") from err


def unwrap_key(private_key: rsa.RSAPrivateKey, encrypted_key: str) -> bytes:
    """The record's AES key (RSA-OAEP SHA-256/MGF1-SHA-256); EncryptionError ``wrong_key`` if it fails."""
    try:
        key = private_key.decrypt(_b64(encrypted_key, "encrypted key"), OAEP)
    except ValueError as err:
        raise EncryptionError("wrong_key", "The record could not be decrypted with this private key: the key "
                                           "does not belong to the form's public key (or the record's key is "
                                           "damaged).") from err
    if len(key) != 32:
        raise EncryptionError("wrong_key", "The record's encryption key is not an AES-256 key.")
    return key


def ivs(instance_id: str, key: bytes, count: int) -> list[bytes]:
    """The IVs of the first `count` files (media in manifest order, then the XML)."""
    seed = bytearray(hashlib.md5(instance_id.encode("utf-8") + key).digest())
    out = []
    for k in range(count):
        seed[k % 16] = (seed[k % 16] + 1) & 0xFF
        out.append(bytes(seed))
    return out


def decrypt_stream(key: bytes, iv: bytes, src: IO[bytes], dst: IO[bytes]) -> str:
    """Decrypt one file from src to dst (AES-256-CFB, PKCS#7 removed) in chunks; return the plaintext's md5 hex.

    Raises EncryptionError ``corrupt_file`` if the padding is wrong (a damaged or truncated part,
    or a part encrypted with another key)."""
    dec = Cipher(algorithms.AES(key), CFB(iv)).decryptor()
    md5 = hashlib.md5()
    held = b""
    total = 0
    while chunk := src.read(CHUNK):
        total += len(chunk)
        held += dec.update(chunk)
        if len(held) > 16:
            out, held = held[:-16], held[-16:]
            md5.update(out)
            dst.write(out)
    held += dec.finalize()
    if total == 0 or total % 16 != 0 or not held:
        raise EncryptionError("corrupt_file", "The encrypted file is truncated or damaged (its length is not a "
                                              "whole number of AES blocks).")
    pad = held[-1]
    if not 1 <= pad <= 16 or pad > len(held) or held[-pad:] != bytes([pad]) * pad:
        raise EncryptionError("corrupt_file", "The encrypted file is damaged or was encrypted with another key "
                                              "(its padding is wrong).")
    tail = held[:-pad]
    md5.update(tail)
    dst.write(tail)
    return md5.hexdigest()


def signature_text(manifest: Manifest, md5s: Iterable[str]) -> str:
    """The text whose MD5 the signature carries (see the module docstring)."""
    lines = [manifest.form_id]
    if manifest.version:
        lines.append(manifest.version)
    lines += [manifest.encrypted_key, manifest.instance_id or ""]
    lines += [f"{plain_name(name)}::{md5}" for name, md5 in zip(manifest.files, md5s, strict=True)]
    return "".join(f"{line}\n" for line in lines)


def verify_signature(private_key: rsa.RSAPrivateKey, manifest: Manifest, md5s: Iterable[str]) -> None:
    """Check base64EncryptedElementSignature against the decrypted files' MD5s; EncryptionError if it fails."""
    if not manifest.signature:
        raise EncryptionError("no_signature", "The record has no signature (base64EncryptedElementSignature); "
                                              "its integrity cannot be checked.")
    try:
        signed = private_key.decrypt(_b64(manifest.signature, "signature"), OAEP)
    except ValueError as err:
        raise EncryptionError("bad_signature", "The record's signature cannot be read with this key.") from err
    expected = hashlib.md5(signature_text(manifest, md5s).encode("utf-8")).digest()
    if signed != expected:
        raise EncryptionError("bad_signature", "The record's signature does not match its contents: a file was "
                                               "changed or damaged after it left the phone.")


class RecordDecryptor:
    """Decrypts the files of one record: ``decrypt(index, src, dst)`` in manifest order, then ``verify()``."""

    def __init__(self, private_key: rsa.RSAPrivateKey, manifest: Manifest) -> None:
        if not manifest.instance_id:
            raise EncryptionError("no_instance_id", "The encrypted record has no instanceID; it cannot be decrypted.")
        self.private_key = private_key
        self.manifest = manifest
        self.key = unwrap_key(private_key, manifest.encrypted_key)
        self.ivs = ivs(manifest.instance_id, self.key, len(manifest.files))
        self.md5s: dict[int, str] = {}

    def decrypt(self, index: int, src: IO[bytes], dst: IO[bytes]) -> str:
        """Decrypt file number `index` of ``manifest.files``; returns its plaintext MD5 hex."""
        md5 = decrypt_stream(self.key, self.ivs[index], src, dst)
        self.md5s[index] = md5
        return md5

    def verify(self) -> None:
        """Check the signature; every file must have been decrypted first."""
        n = len(self.manifest.files)
        if len(self.md5s) != n:
            raise EncryptionError("incomplete", "Not every file of the record was decrypted; the signature cannot "
                                                "be checked.")
        verify_signature(self.private_key, self.manifest, [self.md5s[i] for i in range(n)])


__all__ = [
    "NS_COLLECT",
    "NS_SPEC",
    "OAEP",
    "EncryptionError",
    "Manifest",
    "RecordDecryptor",
    "decrypt_stream",
    "is_manifest",
    "ivs",
    "load_private_key",
    "parse_manifest",
    "plain_name",
    "public_key_base64",
    "read_manifest",
    "signature_text",
    "unwrap_key",
    "verify_signature",
]
