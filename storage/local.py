"""Blobs as files under a root directory: ``root/ab/cd/<sha256>``.

A blob is written to a temporary file in ``root/tmp`` (same filesystem), fsynced, moved into
place with ``os.replace`` and its directory fsynced, so after ``put`` returns the blob survives a
crash, and a crash during ``put`` leaves at most a temporary file (see :meth:`sweep_tmp`).
Two writers of the same content race harmlessly: both rename identical bytes onto the same name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from .base import BlobInfo, BlobNotFound, HashingCopier, validate_key

__all__ = ["LocalBlobStore"]

_TMP = "tmp"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """A BlobStore keeping each blob in a file under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Use (and create if needed) the directory ``root``."""
        self.root = Path(root).resolve()
        self._tmp = self.root / _TMP
        # Owner only (0700 folders, 0600 files), whatever the umask: blobs are the children's photos.
        for folder in reversed([p for p in (self.root, *self.root.parents) if not p.exists()]):
            folder.mkdir(mode=0o700, exist_ok=True)
        st = self.root.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:  # made open to others by an older version
            os.chmod(self.root, 0o700)
        self._tmp.mkdir(mode=0o700, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Return the file path of ``key`` (validated; the file may not exist)."""
        validate_key(key)
        return self.root / key[:2] / key[2:4] / key

    def put(
        self,
        stream: BinaryIO,
        *,
        max_size: int | None = None,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> BlobInfo:
        """Stream ``stream`` into the store; see :meth:`storage.base.BlobStore.put`."""
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                copier = HashingCopier(max_size)
                copier.copy(stream, out)
                info = copier.verify(expected_size=expected_size, expected_sha256=expected_sha256)
                out.flush()
                os.fsync(out.fileno())
            final = self.path(info.key)
            try:
                # Already stored? Refresh its mtime so a concurrent orphan sweep spares it.
                os.utime(final)
            except FileNotFoundError:
                pass
            else:
                tmp.unlink()
                return info
            os.chmod(tmp, 0o600)
            self._make_dirs(final.parent)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            return info
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _make_dirs(self, directory: Path) -> None:
        # Create root/ab/cd, fsyncing each parent whose entries changed.
        for d in (directory.parent, directory):
            if not d.is_dir():
                with contextlib.suppress(FileExistsError):
                    d.mkdir(mode=0o700)
                _fsync_dir(d.parent)

    def open(self, key: str) -> BinaryIO:
        """Open the blob for reading; raise BlobNotFound if absent."""
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        """Return whether the blob exists."""
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        """Return the blob's size in bytes; raise BlobNotFound if absent."""
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def delete(self, key: str) -> None:
        """Delete the blob if present (idempotent)."""
        self.path(key).unlink(missing_ok=True)

    def iter_keys(self) -> Iterator[tuple[str, datetime]]:
        """Yield every stored key with its last-modified time (UTC)."""
        for first in sorted(self._subdirs(self.root)):
            if first.name == _TMP:
                continue
            for second in sorted(self._subdirs(first)):
                with os.scandir(second) as entries:
                    for entry in entries:
                        name = entry.name
                        if (
                            name[:2] == first.name
                            and name[2:4] == second.name
                            and _is_key(name)
                            and entry.is_file(follow_symlinks=False)
                        ):
                            try:
                                mtime = entry.stat(follow_symlinks=False).st_mtime
                            except FileNotFoundError:  # deleted meanwhile
                                continue
                            yield name, datetime.fromtimestamp(mtime, UTC)

    @staticmethod
    def _subdirs(path: Path) -> Iterator[Path]:
        with os.scandir(path) as entries:
            for entry in entries:
                if len(entry.name) == 2 and entry.is_dir(follow_symlinks=False):
                    yield Path(entry.path)

    def url_for(
        self, key: str, *, filename: str, content_type: str, expires: int = 300
    ) -> str | None:
        """Local blobs have no direct URL: always None (the app streams them itself)."""
        validate_key(key)
        return None

    def sweep_tmp(self, older_than: float = 3600.0) -> int:
        """Delete temporary files left by crashed puts older than ``older_than`` seconds.

        Returns how many were removed. Safe to run while puts are in progress as long as
        ``older_than`` is longer than any upload takes.
        """
        cutoff = time.time() - older_than
        removed = 0
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed


def _is_key(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)
