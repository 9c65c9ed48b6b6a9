"""What every request handler and command needs: settings, the database and the blob store."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from storage import BlobStore, open_store

from .db import Database


@dataclass
class Runtime:
    """What every request handler needs: settings, the database and the blob store."""

    config: dict[str, Any]
    db: Database
    store: BlobStore


MULTIPART_MARGIN = 1024 * 1024


def make_store(cfg: dict[str, Any]) -> BlobStore:
    url = cfg["STORAGE_URL"]
    if not str(url).startswith("s3://"):
        return open_store(url)
    return open_store(
        url, endpoint_url=cfg["S3_ENDPOINT_URL"], region=cfg["S3_REGION"],
        access_key=cfg["S3_ACCESS_KEY"], secret_key=cfg["S3_SECRET_KEY"],
        create_bucket=cfg["S3_CREATE_BUCKET"],
    )


def runtime() -> Runtime:
    """The Runtime of the application handling the current request."""
    rt: Runtime = current_app.extensions["carefile"]
    return rt
