"""S3-specific behaviour, against a real SeaweedFS: presigned URLs, layout, open_store."""

from __future__ import annotations

import hashlib
import io
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from storage import BlobNotFound, S3BlobStore, open_store
from tests.support.s3server import S3Server

from .helpers import generated

DATA = b"\xff\xd8\xff\xe0 not really a jpeg " * 100
FILENAME = '儿童照片 "A" 1.jpg'


@pytest.fixture
def s3store(seaweedfs: S3Server) -> S3BlobStore:
    store = open_store(
        f"s3://{seaweedfs.bucket}/t-{uuid.uuid4().hex[:8]}", **seaweedfs.store_options()
    )
    assert isinstance(store, S3BlobStore)
    return store


def test_presigned_url_downloads_with_name_and_type(s3store: S3BlobStore) -> None:
    info = s3store.put(io.BytesIO(DATA))
    url = s3store.url_for(info.key, filename=FILENAME, content_type="image/jpeg", expires=60)
    assert url is not None and "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
        assert response.headers["Content-Type"] == "image/jpeg"
        disposition = response.headers["Content-Disposition"]
    assert body == DATA
    assert "filename*=UTF-8''" + urllib.parse.quote(FILENAME, safe="") in disposition
    assert disposition.startswith('attachment; filename="')


def test_expired_presigned_url_is_refused(s3store: S3BlobStore) -> None:
    info = s3store.put(io.BytesIO(DATA))
    url = s3store.url_for(info.key, filename="a.jpg", content_type="image/jpeg", expires=1)
    assert url is not None
    time.sleep(2)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    refused.value.close()
    assert refused.value.code == 403


def test_tampered_presigned_url_is_refused(s3store: S3BlobStore) -> None:
    info = s3store.put(io.BytesIO(DATA))
    url = s3store.url_for(info.key, filename="a.jpg", content_type="image/jpeg")
    assert url is not None
    tampered = url.replace("a.jpg", "b.jpg")
    assert tampered != url
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=10)
    refused.value.close()
    assert refused.value.code == 403


def test_objects_are_prefix_plus_sha256_with_hash_metadata(s3store: S3BlobStore) -> None:
    info = s3store.put(io.BytesIO(DATA))
    assert s3store.prefix.endswith("/")
    head = s3store.client.head_object(Bucket=s3store.bucket, Key=s3store.prefix + info.sha256)
    assert head["ContentLength"] == len(DATA)
    assert head["Metadata"] == {"sha256": info.sha256, "md5": hashlib.md5(DATA).hexdigest()}
    assert head["ETag"].strip('"') == info.md5  # single-part upload: ETag is the MD5


def test_large_blobs_use_multipart(s3store: S3BlobStore) -> None:
    total = 40 * 1024 * 1024
    info = s3store.put(generated(total))
    head = s3store.client.head_object(Bucket=s3store.bucket, Key=s3store.object_key(info.key))
    assert head["ContentLength"] == total
    assert head["ETag"].strip('"').endswith("-3")  # 16 MiB parts
    assert s3store.client.list_multipart_uploads(Bucket=s3store.bucket).get("Uploads", []) == []


def test_existing_blob_is_not_uploaded_again(s3store: S3BlobStore) -> None:
    info = s3store.put(io.BytesIO(DATA))
    calls: list[str] = []
    s3store.client.meta.events.register(
        "before-call.s3.*", lambda model, **_: calls.append(model.name)
    )
    s3store.put(io.BytesIO(DATA))
    assert calls == ["HeadObject"]
    assert s3store.exists(info.key)


def test_iter_keys_ignores_foreign_objects(s3store: S3BlobStore) -> None:
    info = s3store.put(io.BytesIO(DATA))
    s3store.client.put_object(Bucket=s3store.bucket, Key=s3store.prefix + "README", Body=b"x")
    s3store.client.put_object(Bucket=s3store.bucket, Key=s3store.prefix + "tmp/x", Body=b"x")
    assert [k for k, _ in s3store.iter_keys()] == [info.key]


def test_open_missing_blob(s3store: S3BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        s3store.open("0" * 64)
    assert not s3store.exists("0" * 64)


def test_open_store_creates_bucket(seaweedfs: S3Server) -> None:
    bucket = f"made-{uuid.uuid4().hex[:8]}"
    store = open_store(f"s3://{bucket}", create_bucket=True, **seaweedfs.store_options())
    assert isinstance(store, S3BlobStore) and store.bucket == bucket and store.prefix == ""
    info = store.put(io.BytesIO(DATA))
    assert [k for k, _ in store.iter_keys()] == [info.key]
    # Idempotent: opening again with create_bucket does not fail.
    open_store(f"s3://{bucket}", create_bucket=True, **seaweedfs.store_options())


def test_credentials_from_environment(seaweedfs: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    store = open_store(
        f"s3://{seaweedfs.bucket}/env", endpoint_url=seaweedfs.endpoint_url, region="us-east-1"
    )
    assert store.put(io.BytesIO(b"env")).size == 3


def test_wrong_secret_is_refused(seaweedfs: S3Server) -> None:
    options = seaweedfs.store_options() | {"secret_key": "wrong"}
    store = open_store(f"s3://{seaweedfs.bucket}/x", **options)
    with pytest.raises(Exception, match="SignatureDoesNotMatch|AccessDenied|403"):
        store.put(io.BytesIO(b"nope"))
