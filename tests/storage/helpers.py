"""Test helpers: streams that never exist whole in memory, and leftover checks."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

from storage import BlobStore, LocalBlobStore, S3BlobStore


def block(i: int, size: int = 64 * 1024) -> bytes:
    """Deterministic, non-repeating block number ``i``."""
    seed = hashlib.sha256(i.to_bytes(8, "big")).digest()
    return (seed * (size // len(seed) + 1))[:size]


class GeneratedStream(io.RawIOBase):
    """A read-only stream of ``total`` bytes produced block by block by a generator."""

    def __init__(self, total: int, fail_after: int | None = None) -> None:
        self.total = total
        self.fail_after = fail_after
        self.produced = 0
        self._blocks = self._generate()
        self._pending = b""

    def _generate(self) -> Iterator[bytes]:
        i = 0
        remaining = self.total
        while remaining > 0:
            b = block(i)[:remaining]
            remaining -= len(b)
            i += 1
            yield b

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.fail_after is not None and self.produced >= self.fail_after:
            raise OSError("client went away")
        if not self._pending:
            self._pending = next(self._blocks, b"")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.produced += n
        return n


def generated(total: int, fail_after: int | None = None) -> io.BufferedReader:
    """A buffered (BinaryIO) view of ``GeneratedStream(total, fail_after)``."""
    return io.BufferedReader(GeneratedStream(total, fail_after), buffer_size=64 * 1024)


def generated_sha256(total: int) -> str:
    """SHA-256 of ``GeneratedStream(total)``'s bytes, computed in blocks."""
    h = hashlib.sha256()
    stream = GeneratedStream(total)
    while chunk := stream.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def leftovers(store: BlobStore, spool: Path) -> list[str]:
    """Everything a failed put could have left: blobs, temp files, multipart uploads."""
    found = [k for k, _ in store.iter_keys()]
    if isinstance(store, LocalBlobStore):
        found += [p.name for p in (store.root / "tmp").iterdir()]
    if isinstance(store, S3BlobStore):
        found += [p.name for p in spool.iterdir()]
        uploads = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
        found += [u["Key"] for u in uploads.get("Uploads", [])]
        listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
        found += [o["Key"] for o in listed.get("Contents", [])]
    return found
