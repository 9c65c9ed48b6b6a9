"""Blobs as objects in an S3 bucket (AWS, SeaweedFS, MinIO, …), keyed ``prefix + sha256``.

``put`` spools the stream to a temporary file while hashing it (so the key is known before any
byte is sent, a blob already stored is never uploaded again, and memory use stays flat), then
uploads the file with boto3's managed transfer, which switches to multipart for large blobs and
aborts the multipart upload if anything fails. Downloads are presigned GET URLs.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from .base import (
    BlobInfo,
    BlobIntegrityError,
    BlobNotFound,
    HashingCopier,
    content_disposition,
    validate_key,
)

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

__all__ = ["S3BlobStore"]

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


def _is_not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _NOT_FOUND


class _BodyReader(io.RawIOBase):
    """A raw binary stream over a botocore StreamingBody (which is not a real file object)."""

    def __init__(self, body: StreamingBody) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3BlobStore:
    """A BlobStore keeping each blob as the object ``prefix + sha256`` in ``bucket``."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: S3Client,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        transfer_config: TransferConfig | None = None,
        refresh_after: timedelta = timedelta(hours=1),
    ) -> None:
        """Store blobs in ``bucket`` under ``prefix`` (a ``/`` is appended if missing).

        ``spool_dir`` is where uploads are spooled (default: the system temp directory).
        Storing a blob that already exists refreshes its last-modified time (a server-side
        self-copy) if it is older than ``refresh_after``, so an orphan sweep with a longer grace
        period never deletes a blob that a new upload is about to reference.
        """
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.client = client
        self.spool_dir = None if spool_dir is None else os.fspath(spool_dir)
        self.transfer_config = transfer_config or TransferConfig(
            multipart_threshold=16 * 1024 * 1024,
            multipart_chunksize=16 * 1024 * 1024,
            max_concurrency=4,
        )
        self.refresh_after = refresh_after

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def object_key(self, key: str) -> str:
        """Return the S3 object key of blob ``key`` (validated)."""
        return self.prefix + validate_key(key)

    def put(
        self,
        stream: BinaryIO,
        *,
        max_size: int | None = None,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> BlobInfo:
        """Stream ``stream`` into the bucket; see :meth:`storage.base.BlobStore.put`."""
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix="carefile-put-") as spool:
            copier = HashingCopier(max_size)
            copier.copy(stream, spool)
            info = copier.verify(expected_size=expected_size, expected_sha256=expected_sha256)
            spool.flush()
            name = self.object_key(info.key)
            if self._refresh_if_exists(name):
                return info
            # upload_file (unlike upload_fileobj, which reads whole parts into memory) streams
            # from the file; on failure it aborts any multipart upload it started.
            self.client.upload_file(
                spool.name,
                self.bucket,
                name,
                ExtraArgs={
                    "ContentType": "application/octet-stream",
                    "Metadata": {"sha256": info.sha256, "md5": info.md5},
                },
                Config=self.transfer_config,
            )
        stored = self.client.head_object(Bucket=self.bucket, Key=name)
        if stored["ContentLength"] != info.size:
            self.client.delete_object(Bucket=self.bucket, Key=name)
            raise BlobIntegrityError(
                f"stored object has {stored['ContentLength']} bytes, uploaded {info.size}"
            )
        return info

    def _refresh_if_exists(self, name: str) -> bool:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        if datetime.now(UTC) - head["LastModified"] > self.refresh_after:
            try:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=name,
                    CopySource={"Bucket": self.bucket, "Key": name},
                    MetadataDirective="REPLACE",
                    Metadata=head.get("Metadata", {}),
                    ContentType=head.get("ContentType", "application/octet-stream"),
                )
            except ClientError as exc:
                if _is_not_found(exc):  # deleted meanwhile: upload it again
                    return False
                raise
        return True

    def open(self, key: str) -> BinaryIO:
        """Open the object for streaming reads; raise BlobNotFound if absent."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                raise BlobNotFound(key) from None
            raise
        return io.BufferedReader(_BodyReader(response["Body"]), buffer_size=256 * 1024)

    def exists(self, key: str) -> bool:
        """Return whether the object exists."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def size(self, key: str) -> int:
        """Return the object's size in bytes; raise BlobNotFound if absent."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_not_found(exc):
                raise BlobNotFound(key) from None
            raise
        return head["ContentLength"]

    def delete(self, key: str) -> None:
        """Delete the object if present (idempotent)."""
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def iter_keys(self) -> Iterator[tuple[str, datetime]]:
        """Yield every blob key under the prefix with its last-modified time (UTC)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix) :]
                if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
                    yield key, obj["LastModified"].astimezone(UTC)

    def url_for(
        self,
        key: str,
        *,
        filename: str,
        content_type: str,
        expires: int = 300,
        disposition: str = "attachment",
    ) -> str | None:
        """Return a presigned GET URL valid for ``expires`` seconds.

        The URL makes S3 answer with ``Content-Type: content_type`` and a Content-Disposition
        carrying ``filename`` (UTF-8 via ``filename*``). The object's existence is not checked.
        """
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.object_key(key),
                "ResponseContentDisposition": content_disposition(filename, disposition),
                "ResponseContentType": content_type,
            },
            ExpiresIn=expires,
        )


def ensure_bucket(client: S3Client, bucket: str, region: str | None = None) -> None:
    """Create ``bucket`` unless it already exists (and is ours)."""
    try:
        client.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in _NOT_FOUND | {"NoSuchBucket"}:
            raise
    try:
        if region and region != "us-east-1":
            client.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
            )
        else:
            client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
