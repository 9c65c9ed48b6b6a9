"""Secrets at rest: the database holds no token or session id in a form that signs anyone in.

- Every bearer secret (API session tokens, web session ids, collectors' and app users' token-URL
  secrets, draft test tokens) is stored as its SHA-256 (`digest`); a presented secret is hashed and
  looked up by its digest, and the stored digest is compared again in constant time (`same`). A digest
  read from the database file or a backup does not authenticate.
- The secrets a user must be able to see again (a collector's QR code, a draft's test URL, Central's
  app-user `token`) are kept besides, sealed with a key derived from the server's secret key
  (CAREFILE_SECRET_KEY or <DATA_DIR>/secret_key, which is not in the database nor in a backup):
  AES-256-GCM, the purpose as associated data. Without the secret key the sealed copy is useless; a
  server whose secret key changed cannot show the QR code again (renewing makes a new one) while phones
  set up with the old one keep working (they are checked against the digest).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def digest(secret: str) -> str:
    """The SHA-256 (hex, 64 characters) stored in place of a secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same(stored_digest: str | None, secret: str) -> bool:
    """Whether `secret` is the one whose digest is stored (constant time)."""
    if not stored_digest:
        return False
    return hmac.compare_digest(stored_digest.encode(), digest(secret).encode())


def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"carefile token seal v1", hashlib.sha256).digest()


def seal(secret_key: str, purpose: str, secret: str) -> str:
    """`secret` encrypted under the server's secret key (base64 of nonce + ciphertext)."""
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(_key(secret_key)).encrypt(nonce, secret.encode(), purpose.encode())
                            ).decode()


def unseal(secret_key: str, purpose: str, sealed: str | None, stored_digest: str | None = None) -> str | None:
    """The sealed secret, or None (nothing sealed, another secret key, or not the secret of `stored_digest`)."""
    if not sealed:
        return None
    try:
        raw = base64.b64decode(sealed)
        secret = AESGCM(_key(secret_key)).decrypt(raw[:12], raw[12:], purpose.encode()).decode()
    except (InvalidTag, ValueError):
        return None
    if stored_digest is not None and not same(stored_digest, secret):
        return None
    return secret
