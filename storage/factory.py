"""Build a BlobStore from a URL (the ``CAREFILE_BLOB_URL``-style setting)."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from .base import BlobStore
from .local import LocalBlobStore

__all__ = ["DEFAULT_LOCAL_ROOT", "open_store"]

#: Root used for ``open_store("")`` when no ``root`` option is given (relative to the cwd).
DEFAULT_LOCAL_ROOT = "blobs"

_S3_OPTIONS = frozenset(
    {
        "endpoint_url",
        "region",
        "access_key",
        "secret_key",
        "session_token",
        "create_bucket",
        "addressing_style",
        "spool_dir",
    }
)


def open_store(url: str, **options: Any) -> BlobStore:
    """Return the BlobStore that ``url`` names.

    - ``""``: a LocalBlobStore at option ``root`` (default ``./blobs``);
    - a path or ``file:///path``: a LocalBlobStore there;
    - ``s3://bucket/prefix``: an S3BlobStore. Options: ``endpoint_url``, ``region``,
      ``access_key``, ``secret_key``, ``session_token`` (else boto3's usual credential chain:
      environment, config files, instance role), ``create_bucket`` (create it if missing),
      ``addressing_style`` (default ``"path"``), ``spool_dir``.

    Unknown options raise TypeError, so a misspelt setting is not silently ignored.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "s3":
        unknown = set(options) - _S3_OPTIONS
        if unknown:
            raise TypeError(f"unknown S3 store options: {', '.join(sorted(unknown))}")
        if not parts.netloc:
            raise ValueError(f"S3 URL has no bucket: {url!r}")
        return _open_s3(parts.netloc, parts.path.lstrip("/"), **options)
    unknown = set(options) - {"root"}
    if unknown:
        raise TypeError(f"unknown local store options: {', '.join(sorted(unknown))}")
    if url == "":
        return LocalBlobStore(options.get("root") or DEFAULT_LOCAL_ROOT)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URL must be local: {url!r}")
        return LocalBlobStore(urllib.parse.unquote(parts.path))
    if parts.scheme and len(parts.scheme) > 1:  # "C:\\..." has a one-letter "scheme"
        raise ValueError(f"unsupported blob store URL: {url!r}")
    return LocalBlobStore(Path(os.path.expanduser(url)))


def _open_s3(
    bucket: str,
    prefix: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    create_bucket: bool = False,
    addressing_style: str = "path",
    spool_dir: str | None = None,
) -> BlobStore:
    import boto3
    from botocore.config import Config

    from .s3 import S3BlobStore, ensure_bucket

    if addressing_style not in ("path", "virtual", "auto"):
        raise ValueError(f"addressing_style must be path, virtual or auto: {addressing_style!r}")
    style: Literal["path", "virtual", "auto"] = addressing_style  # type: ignore[assignment]
    session = boto3.session.Session(
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        aws_session_token=session_token or None,
        region_name=region or None,
    )
    client = session.client(
        "s3",
        endpoint_url=endpoint_url or None,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": style},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
        ),
    )
    if create_bucket:
        ensure_bucket(client, bucket, region)
    return S3BlobStore(bucket, prefix, client, spool_dir=spool_dir)
