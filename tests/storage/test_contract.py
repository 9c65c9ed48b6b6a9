"""The BlobStore contract, run against LocalBlobStore and SeaweedFS (see conftest.store)."""

from __future__ import annotations

import hashlib
import io
import shutil
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import (
    BlobInfo,
    BlobIntegrityError,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    InvalidBlobKey,
    LocalBlobStore,
)

from .helpers import GeneratedStream, generated, generated_sha256, leftovers

DATA = "儿童 care file ✓\n".encode() * 1000


def test_put_open_roundtrip(store: BlobStore) -> None:
    info = store.put(io.BytesIO(DATA))
    assert info == BlobInfo(
        key=hashlib.sha256(DATA).hexdigest(),
        sha256=hashlib.sha256(DATA).hexdigest(),
        md5=hashlib.md5(DATA).hexdigest(),
        size=len(DATA),
    )
    assert store.exists(info.key)
    assert store.size(info.key) == len(DATA)
    with store.open(info.key) as f:
        assert f.read(10) == DATA[:10]
        assert f.read() == DATA[10:]


def test_empty_blob(store: BlobStore) -> None:
    info = store.put(io.BytesIO(b""))
    assert info.size == 0 and info.key == hashlib.sha256(b"").hexdigest()
    with store.open(info.key) as f:
        assert f.read() == b""


def test_open_streams_into_copyfileobj(store: BlobStore) -> None:
    info = store.put(io.BytesIO(DATA))
    out = io.BytesIO()
    with store.open(info.key) as f:
        shutil.copyfileobj(f, out, 1000)
    assert out.getvalue() == DATA


def test_same_content_is_stored_once(store: BlobStore) -> None:
    first = store.put(io.BytesIO(DATA))
    second = store.put(io.BytesIO(DATA), expected_sha256=first.sha256, expected_size=len(DATA))
    assert first == second
    assert [k for k, _ in store.iter_keys()] == [first.key]


def test_max_size_aborts_and_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(BlobTooLarge):
        store.put(generated(5 * 1024 * 1024), max_size=1024 * 1024)
    assert leftovers(store, tmp_path) == []


def test_max_size_stops_reading_early(store: BlobStore) -> None:
    stream = GeneratedStream(50 * 1024 * 1024)
    with pytest.raises(BlobTooLarge):
        store.put(io.BufferedReader(stream), max_size=100_000)
    assert stream.produced <= 100_001 + 64 * 1024  # not the whole 50 MB


def test_max_size_is_inclusive(store: BlobStore) -> None:
    assert store.put(io.BytesIO(DATA), max_size=len(DATA)).size == len(DATA)


def test_sha256_mismatch_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(BlobIntegrityError, match="sha256"):
        store.put(io.BytesIO(DATA), expected_sha256="0" * 64)
    assert leftovers(store, tmp_path) == []


def test_size_mismatch_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(BlobIntegrityError, match="size"):
        store.put(io.BytesIO(DATA), expected_size=len(DATA) + 1)
    assert leftovers(store, tmp_path) == []


def test_mismatch_does_not_touch_an_existing_blob(store: BlobStore) -> None:
    info = store.put(io.BytesIO(DATA))
    with pytest.raises(BlobIntegrityError):
        store.put(io.BytesIO(DATA + b"x"), expected_sha256=info.sha256)
    with store.open(info.key) as f:
        assert f.read() == DATA


def test_failing_stream_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="client went away"):
        store.put(generated(3 * 1024 * 1024, fail_after=2 * 1024 * 1024))
    assert leftovers(store, tmp_path) == []


def test_expected_sha256_is_case_insensitive(store: BlobStore) -> None:
    sha = hashlib.sha256(DATA).hexdigest()
    assert store.put(io.BytesIO(DATA), expected_sha256=sha.upper()).key == sha


def test_delete_is_idempotent(store: BlobStore) -> None:
    info = store.put(io.BytesIO(DATA))
    store.delete(info.key)
    store.delete(info.key)
    store.delete("f" * 64)
    assert not store.exists(info.key)
    with pytest.raises(BlobNotFound):
        store.open(info.key)
    with pytest.raises(BlobNotFound):
        store.size(info.key)


def test_iter_keys_lists_every_blob_with_utc_time(store: BlobStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    keys = {store.put(io.BytesIO(b"blob %d" % i)).key for i in range(5)}
    listed = dict(store.iter_keys())
    assert set(listed) == keys
    after = datetime.now(UTC) + timedelta(seconds=5)
    for modified in listed.values():
        assert modified.tzinfo is not None and modified.utcoffset() == timedelta(0)
        assert before <= modified <= after


def test_put_again_refreshes_last_modified(store: BlobStore) -> None:
    """An orphan sweep comparing last-modified to a grace period must spare re-uploaded blobs."""
    info = store.put(io.BytesIO(DATA))
    if isinstance(store, LocalBlobStore):
        old = datetime.now(UTC) - timedelta(days=3)
        path = store.path(info.key)
        import os

        os.utime(path, (old.timestamp(), old.timestamp()))
    else:
        import time

        store.refresh_after = timedelta(0)  # type: ignore[attr-defined]
        time.sleep(1.1)  # S3 times have one-second resolution
    (first,) = [t for k, t in store.iter_keys() if k == info.key]
    store.put(io.BytesIO(DATA))
    (second,) = [t for k, t in store.iter_keys() if k == info.key]
    assert second > first


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "../" + "a" * 61,
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "ab/" + "c" * 61,
        "",
        "a" * 63 + "\n",
    ],
)
def test_bad_keys_are_rejected(store: BlobStore, key: str) -> None:
    for call in (store.open, store.exists, store.size, store.delete):
        with pytest.raises(InvalidBlobKey):
            call(key)
    with pytest.raises(InvalidBlobKey):
        store.url_for(key, filename="x", content_type="text/plain")
    assert issubclass(InvalidBlobKey, ValueError)


def test_twenty_megabytes_stream_in_constant_memory(store: BlobStore) -> None:
    total = 20 * 1024 * 1024
    tracemalloc.start()
    try:
        info = store.put(generated(total), expected_size=total)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        h = hashlib.sha256()
        with store.open(info.key) as f:
            while chunk := f.read(256 * 1024):
                h.update(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total
    assert info.key == generated_sha256(total) == h.hexdigest()
    # Bounded by chunk sizes, not by the blob: 256 KiB copy chunks here, plus for S3 botocore's
    # 1 MiB payload-hashing reads in each of the (up to 4) concurrent multipart part uploads.
    assert put_peak < 5 * 1024 * 1024, f"put peaked at {put_peak / 2**20:.1f} MB"
    assert read_peak < 4 * 1024 * 1024, f"read peaked at {read_peak / 2**20:.1f} MB"


def test_concurrent_writers_of_the_same_content(store: BlobStore, tmp_path: Path) -> None:
    data = generated(3 * 1024 * 1024).read()
    assert len(data) == 3 * 1024 * 1024
    results: list[BlobInfo] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            results.append(store.put(io.BytesIO(data)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.key for r in results}) == 1 and len(results) == 6
    key = results[0].key
    expected = [key] if isinstance(store, LocalBlobStore) else [key, store.object_key(key)]  # type: ignore[attr-defined]
    assert leftovers(store, tmp_path) == expected
    with store.open(results[0].key) as f:
        assert f.read() == data
