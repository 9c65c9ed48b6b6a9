"""Fixtures: every contract test runs against LocalBlobStore and a real SeaweedFS S3 server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import BlobStore, LocalBlobStore, open_store
from tests.support.s3server import S3Server, start_seaweedfs


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real SeaweedFS for the whole session (about 1.5 s to start)."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """A fresh, empty store: a local directory, or a unique prefix in the SeaweedFS bucket."""
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    server: S3Server = request.getfixturevalue("seaweedfs")
    prefix = f"test-{uuid.uuid4().hex[:12]}/"
    return open_store(
        f"s3://{server.bucket}/{prefix}",
        **server.store_options(),
        spool_dir=str(tmp_path),
    )
