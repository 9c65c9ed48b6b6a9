"""Where backups go: a local folder or an S3 prefix, addressed by relative names ("blobs/ab/cd/<key>")."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from botocore.exceptions import ClientError

from storage import open_store


def private_dirs(path: Path) -> None:
    """mkdir -p with every folder it makes 0700 (Path.mkdir gives the parents it makes the umask's mode)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)


class BackupError(Exception):
    """A backup, verify or restore step failed; the message says what to do."""


class Target(Protocol):
    url: str

    def exists(self, name: str) -> bool: ...
    def names(self, prefix: str) -> Iterator[tuple[str, int]]: ...
    def open(self, name: str) -> BinaryIO: ...
    def read_bytes(self, name: str) -> bytes: ...
    def put_file(self, name: str, path: Path) -> None: ...
    def put_bytes(self, name: str, data: bytes) -> None: ...


class LocalTarget:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.url = str(self.root)

    def _path(self, name: str) -> Path:
        """The file `name` names inside the backup folder: never outside it, never through a link."""
        plain = Path(os.path.normpath(self.root / name))
        path = (self.root / name).resolve()
        if self.root not in path.parents or Path(name).is_absolute() or ".." in Path(name).parts:
            raise BackupError(f"bad name in backup: {name[:200]!r}")
        if path != plain:
            raise BackupError(f"{name[:200]} in the backup at {self.url} is a link or passes through one; a backup "
                              "holds plain files only. Nothing was restored from it.")
        return path

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def names(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(name, stored size) of every file under the folder `prefix`."""
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for f in files:
                if not f.endswith(".part"):
                    path = Path(dirpath) / f
                    yield str(path.relative_to(self.root)), path.stat().st_size

    def open(self, name: str) -> BinaryIO:
        try:
            return self._path(name).open("rb")
        except FileNotFoundError:
            raise BackupError(f"{name} is missing from the backup at {self.url}") from None

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as fh:
            return fh.read()

    def put_file(self, name: str, path: Path) -> None:
        # Owner only (0700 folders, 0600 files) whatever the umask: a backup holds every child's file.
        dest = self._path(name)
        private_dirs(dest.parent)
        part = dest.with_name(dest.name + ".part")
        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(part, 0o600)
        shutil.copyfile(path, part)
        with part.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(part, dest)  # a reader never sees half a file

    def put_bytes(self, name: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            tmp.write(data)
        try:
            self.put_file(name, Path(tmp.name))
        finally:
            os.unlink(tmp.name)


class S3Target:
    def __init__(self, url: str, client: Any, bucket: str, prefix: str) -> None:
        self.url = url
        self.client = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def names(self, prefix: str) -> Iterator[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"][len(self.prefix):], int(obj["Size"])

    def open(self, name: str) -> BinaryIO:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BackupError(f"{name} is missing from the backup at {self.url}") from None
            raise
        return body  # type: ignore[no-any-return]

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as fh:
            return fh.read()

    def put_file(self, name: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self.prefix + name)

    def put_bytes(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)


def open_target(dest: str, cfg: dict[str, Any]) -> Target:
    """A folder, or `s3://bucket/prefix` reached with the server's CAREFILE_S3_* settings."""
    if dest.startswith("s3://"):
        store = open_store(dest, endpoint_url=cfg["S3_ENDPOINT_URL"], region=cfg["S3_REGION"],
                           access_key=cfg["S3_ACCESS_KEY"], secret_key=cfg["S3_SECRET_KEY"],
                           create_bucket=cfg["S3_CREATE_BUCKET"])
        return S3Target(dest, store.client, store.bucket, store.prefix)  # type: ignore[attr-defined]
    return LocalTarget(Path(dest))
