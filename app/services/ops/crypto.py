"""Backup encryption: AES-256-GCM in 1 MiB chunks, the key derived from a passphrase with scrypt.

One key per backup destination: `carefile-backup.json` holds the scrypt salt and parameters
(n=2^15, r=8, p=1) and a check value, so a wrong passphrase is refused before anything is written
or read. An encrypted file is `CFB1` + an 8-byte random nonce prefix + chunks; chunk i is sealed
with nonce = prefix ‖ i (32-bit big-endian) and associated data = the file's name in the backup
plus a last-chunk flag, so chunks cannot be reordered, dropped, cut off at the end or moved to
another file without decryption failing.
"""
from __future__ import annotations

import base64
import os
from typing import Any, BinaryIO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from app.services.ops.target import BackupError

MAGIC = b"CFB1"
CHUNK = 1024 * 1024
TAG = 16
SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_CHECK = b"carefile backup key check"


class _Sink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


def _read_full(src: BinaryIO, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        b = src.read(size - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _aad(name: str, last: bool) -> bytes:
    return name.encode() + (b"\x01" if last else b"\x00")


class Sealer:
    def __init__(self, key: bytes) -> None:
        self.aes = AESGCM(key)

    @classmethod
    def create(cls, passphrase: str) -> tuple[Sealer, dict[str, Any]]:
        """A new key for a new destination, and the header to store in carefile-backup.json."""
        salt = os.urandom(16)
        sealer = cls(_derive(passphrase, salt, SCRYPT))
        nonce = os.urandom(12)
        header = {"cipher": "AES-256-GCM", "chunk": CHUNK, "kdf": "scrypt", **SCRYPT,
                  "salt": base64.b64encode(salt).decode(),
                  "check": base64.b64encode(nonce + sealer.aes.encrypt(nonce, _CHECK, None)).decode()}
        return sealer, header

    @classmethod
    def open(cls, passphrase: str, header: dict[str, Any]) -> Sealer:
        sealer = cls(_derive(passphrase, base64.b64decode(header["salt"]),
                             {k: int(header[k]) for k in ("n", "r", "p")}))
        check = base64.b64decode(header["check"])
        try:
            sealer.aes.decrypt(check[:12], check[12:], None)
        except InvalidTag:
            raise BackupError("The passphrase does not open this backup. Use the passphrase the backups "
                              "in this destination were made with.") from None
        return sealer

    def encrypt(self, src: BinaryIO, sink: _Sink, name: str) -> None:
        prefix = os.urandom(8)
        sink.write(MAGIC + prefix)
        counter = 0
        cur = _read_full(src, CHUNK)
        while True:
            nxt = _read_full(src, CHUNK) if len(cur) == CHUNK else b""
            last = not nxt
            sink.write(self.aes.encrypt(prefix + counter.to_bytes(4, "big"), cur, _aad(name, last)))
            if last:
                return
            counter += 1
            cur = nxt

    def decrypt(self, src: BinaryIO, sink: _Sink, name: str) -> None:
        head = _read_full(src, 12)
        if head[:4] != MAGIC:
            raise BackupError(f"{name} is not an encrypted CareFile backup file (damaged?)")
        prefix, counter = head[4:], 0
        cur = _read_full(src, CHUNK + TAG)
        while True:
            nxt = _read_full(src, CHUNK + TAG) if len(cur) == CHUNK + TAG else b""
            last = not nxt
            try:
                sink.write(self.aes.decrypt(prefix + counter.to_bytes(4, "big"), cur, _aad(name, last)))
            except InvalidTag:
                raise BackupError(f"{name} is damaged: its contents do not decrypt "
                                  f"(chunk {counter + 1})") from None
            if last:
                return
            counter += 1
            cur = nxt


def _derive(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    if not passphrase:
        raise BackupError("The passphrase is empty.")
    return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(passphrase.encode())
