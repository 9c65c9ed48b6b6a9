"""CareFile's blob stores: content-addressed, streaming, local files or S3.

Knows nothing of Flask, the database, the app or ODK forms.
"""

from __future__ import annotations

from .base import (
    BlobError,
    BlobInfo,
    BlobIntegrityError,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    InvalidBlobKey,
    content_disposition,
    validate_key,
)
from .factory import open_store
from .local import LocalBlobStore
from .s3 import S3BlobStore

__all__ = [
    "BlobError",
    "BlobInfo",
    "BlobIntegrityError",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "InvalidBlobKey",
    "LocalBlobStore",
    "S3BlobStore",
    "content_disposition",
    "open_store",
    "validate_key",
]
