"""LocalBlobStore specifics, open_store URL parsing and content_disposition."""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from storage import LocalBlobStore, S3BlobStore, content_disposition, open_store, validate_key


def test_layout_is_root_ab_cd_sha256(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    info = store.put(io.BytesIO(b"hello"))
    path = tmp_path / info.key[:2] / info.key[2:4] / info.key
    assert path.read_bytes() == b"hello"
    assert store.path(info.key) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # children's photos: the server's user's alone
    assert stat.S_IMODE(path.parent.stat().st_mode) == stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert list((tmp_path / "tmp").iterdir()) == []


def test_files_outside_the_layout_are_not_keys(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    info = store.put(io.BytesIO(b"hello"))
    (tmp_path / "tmp" / ("a" * 64)).write_bytes(b"partial")
    (tmp_path / "ab").mkdir(exist_ok=True)
    (tmp_path / "ab" / ("c" * 64)).write_bytes(b"misplaced")
    assert [k for k, _ in store.iter_keys()] == [info.key]


def test_url_for_is_none(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    info = store.put(io.BytesIO(b"hello"))
    assert store.url_for(info.key, filename="a.txt", content_type="text/plain") is None


def test_sweep_tmp_removes_only_old_temp_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    old, new = tmp_path / "tmp" / "put-old", tmp_path / "tmp" / "put-new"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert store.sweep_tmp(older_than=3600) == 1
    assert not old.exists() and new.exists()


def test_open_store_local_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    default = open_store("")
    assert isinstance(default, LocalBlobStore) and default.root == tmp_path / "blobs"
    rooted = open_store("", root=str(tmp_path / "r"))
    assert isinstance(rooted, LocalBlobStore) and rooted.root == tmp_path / "r"
    by_path = open_store(str(tmp_path / "p"))
    assert isinstance(by_path, LocalBlobStore) and by_path.root == tmp_path / "p"
    by_url = open_store(f"file://{tmp_path}/with%20space")
    assert isinstance(by_url, LocalBlobStore) and by_url.root == tmp_path / "with space"


def test_open_store_s3_url_parsing() -> None:
    store = open_store(
        "s3://bucket/some/prefix",
        endpoint_url="http://127.0.0.1:1",
        region="eu-west-1",
        access_key="k",
        secret_key="s",
    )
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("bucket", "some/prefix/")
    config: Any = store.client.meta.config
    assert config.signature_version == "s3v4"
    assert config.s3 is not None and config.s3["addressing_style"] == "path"
    assert store.client.meta.region_name == "eu-west-1"


@pytest.mark.parametrize(
    ("url", "options", "error"),
    [
        ("s3://b/p", {"endpoint": "x"}, TypeError),
        ("/tmp/x", {"endpoint_url": "x"}, TypeError),
        ("s3:///p", {}, ValueError),
        ("ftp://host/x", {}, ValueError),
        ("file://otherhost/x", {}, ValueError),
        ("s3://b/p", {"addressing_style": "sideways"}, ValueError),
    ],
)
def test_open_store_rejects_bad_settings(
    url: str, options: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        open_store(url, **options)


def test_content_disposition() -> None:
    value = content_disposition('儿童 "照片"\\.jpg')
    assert value == (
        'attachment; filename="__ _____.jpg"; '
        + "filename*=UTF-8''%E5%84%BF%E7%AB%A5%20%22%E7%85%A7%E7%89%87%22%5C.jpg"
    )
    assert content_disposition("a.csv", "inline") == (
        "inline; filename=\"a.csv\"; filename*=UTF-8''a.csv"
    )
    assert content_disposition("") == "attachment; filename=\"download\"; filename*=UTF-8''"


def test_validate_key_returns_key() -> None:
    key = "0123456789abcdef" * 4
    assert validate_key(key) == key
