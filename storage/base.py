"""The blob-store contract shared by every backend.

Blobs are content-addressed: a blob's key is the lowercase hex SHA-256 of its bytes, so the same
content uploaded twice is stored once, and a key can always be checked against the bytes it names.
Backends stream: no method ever holds a whole blob in memory.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol, runtime_checkable

__all__ = [
    "CHUNK_SIZE",
    "BlobError",
    "BlobInfo",
    "BlobIntegrityError",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "HashingCopier",
    "InvalidBlobKey",
    "content_disposition",
    "open_store",
    "validate_key",
]

#: Bytes read from an input stream at a time.
CHUNK_SIZE = 256 * 1024

_KEY_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BlobInfo:
    """What :meth:`BlobStore.put` learnt about a stored blob."""

    key: str  # sha256 hex digest of the content (content-addressed)
    sha256: str
    md5: str  # hex, needed for ODK manifest hashes and ETags
    size: int


class BlobError(Exception):
    """Base class of every error a blob store raises."""


class BlobTooLarge(BlobError):
    """The stream was longer than ``max_size``; nothing was stored."""


class BlobIntegrityError(BlobError):
    """The bytes did not match ``expected_size`` or ``expected_sha256``; nothing was stored."""


class BlobNotFound(BlobError):
    """No blob is stored under the key."""


class InvalidBlobKey(BlobError, ValueError):
    """The key is not 64 lowercase hex digits (so it could never name a blob)."""


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a well-formed blob key, else raise InvalidBlobKey.

    A valid key is exactly 64 lowercase hex digits, so it can never contain ``/``, ``..`` or
    anything else that could escape a directory or an S3 prefix.
    """
    if not isinstance(key, str) or _KEY_RE.fullmatch(key) is None:
        raise InvalidBlobKey(f"not a blob key (64 lowercase hex digits expected): {key!r:.80}")
    return key


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """Build a Content-Disposition value that carries a UTF-8 file name safely.

    ``filename*`` (RFC 6266/8187) holds the exact name percent-encoded; the plain ``filename``
    is an ASCII fallback with anything unsafe in a quoted string replaced by ``_``.
    """
    fallback = (
        "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename).strip()
        or "download"
    )
    encoded = urllib.parse.quote(filename, safe="")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


class _Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class HashingCopier:
    """Copy a stream in chunks to a sink, computing SHA-256, MD5 and size on the way.

    ``copy`` raises BlobTooLarge as soon as more than ``max_size`` bytes have been read, and
    ``verify`` checks the result against the caller's expectations. Backends use it; callers of a
    store never need it.
    """

    def __init__(self, max_size: int | None = None, chunk_size: int = CHUNK_SIZE) -> None:
        """Prepare a copier that refuses more than ``max_size`` bytes (None: no limit)."""
        if max_size is not None and max_size < 0:
            raise ValueError("max_size must be >= 0")
        self.max_size = max_size
        self.chunk_size = chunk_size
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)

    def copy(self, stream: BinaryIO, sink: _Writable) -> None:
        """Read ``stream`` to its end, writing every chunk to ``sink`` and hashing it."""
        while True:
            # Read at most one byte past the limit, so an over-long stream is caught early.
            want = self.chunk_size
            if self.max_size is not None:
                want = min(want, self.max_size - self.size + 1)
            chunk = stream.read(want)
            if not chunk:
                return
            self.size += len(chunk)
            if self.max_size is not None and self.size > self.max_size:
                raise BlobTooLarge(f"blob exceeds the limit of {self.max_size} bytes")
            self._sha256.update(chunk)
            self._md5.update(chunk)
            sink.write(chunk)

    def verify(
        self, *, expected_size: int | None = None, expected_sha256: str | None = None
    ) -> BlobInfo:
        """Return the BlobInfo of what was copied, or raise BlobIntegrityError on a mismatch."""
        sha256 = self._sha256.hexdigest()
        if expected_size is not None and expected_size != self.size:
            raise BlobIntegrityError(
                f"size mismatch: expected {expected_size} bytes, received {self.size}"
            )
        if expected_sha256 is not None and expected_sha256.lower() != sha256:
            raise BlobIntegrityError(
                f"sha256 mismatch: expected {expected_sha256:.64}, received {sha256}"
            )
        return BlobInfo(key=sha256, sha256=sha256, md5=self._md5.hexdigest(), size=self.size)


@runtime_checkable
class BlobStore(Protocol):
    """A content-addressed store of immutable blobs."""

    def put(
        self,
        stream: BinaryIO,
        *,
        max_size: int | None = None,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> BlobInfo:
        """Store the bytes read from ``stream`` and return their BlobInfo.

        Streams in chunks, hashes while writing, verifies, and returns only once the blob is
        durable. The same content twice gives the same key and is stored once (storing it again
        refreshes its last-modified time, so an orphan sweep racing the second upload keeps it).
        Raises BlobTooLarge or BlobIntegrityError; on any error nothing is left behind.
        """
        ...

    def open(self, key: str) -> BinaryIO:
        """Open the blob for streaming reads; raise BlobNotFound if it is absent."""
        ...

    def exists(self, key: str) -> bool:
        """Return whether a blob is stored under ``key``."""
        ...

    def size(self, key: str) -> int:
        """Return the blob's size in bytes; raise BlobNotFound if it is absent."""
        ...

    def delete(self, key: str) -> None:
        """Delete the blob; deleting an absent blob is not an error."""
        ...

    def iter_keys(self) -> Iterator[tuple[str, datetime]]:
        """Yield every stored key with its last-modified time (timezone-aware, UTC)."""
        ...

    def url_for(
        self, key: str, *, filename: str, content_type: str, expires: int = 300
    ) -> str | None:
        """Return a short-lived direct download URL, or None if the backend has none."""
        ...


def open_store(url: str, **options: Any) -> BlobStore:
    """Return the BlobStore named by ``url``; see :func:`storage.factory.open_store`."""
    from .factory import open_store as _open_store

    return _open_store(url, **options)
