"""HTTP Range for export downloads: 206/416/If-Range on the local store, 307 to S3's presigned URL."""
from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug.http import http_date

from app.blobhttp import parse_range, ranged_response

DATA = bytes(range(256)) * 10  # 2,560 bytes
WHEN = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("bytes=0-99", (0, 99)),
    ("bytes=100-", (100, 2559)),
    ("bytes=-10", (2550, 2559)),
    ("bytes=-5000", (0, 2559)),
    ("bytes=2000-9999", (2000, 2559)),
    ("bytes=2560-", "unsatisfiable"),
    ("bytes=3000-3100", "unsatisfiable"),
    ("bytes=-0", "unsatisfiable"),
    ("bytes=5-1", None),          # invalid: ignored, whole file
    ("bytes=0-1,5-6", None),      # several ranges: whole file (allowed by RFC 9110)
    ("items=0-1", None),
    ("bytes=a-b", None),
])
def test_parse_range(header: str | None, expected: Any) -> None:
    assert parse_range(header, len(DATA)) == expected


def serve(app: Any, rt: Any, headers: dict[str, str]) -> Any:
    key = rt.store.put(io.BytesIO(DATA))
    with app.test_request_context("/x", headers=headers):
        resp = ranged_response(rt, key.key, key.md5, len(DATA), "导出.zip", "application/zip", WHEN)
        resp.direct_passthrough = False
        return resp.status_code, resp.headers, resp.get_data(), key.md5


def test_local_range_206_and_resume(app: Any, rt: Any) -> None:
    status, headers, body, md5 = serve(app, rt, {"Range": "bytes=0-99"})
    assert status == 206 and body == DATA[:100]
    assert headers["Content-Range"] == f"bytes 0-99/{len(DATA)}" and headers["Content-Length"] == "100"
    assert headers["ETag"] == f'"{md5}"' and headers["Accept-Ranges"] == "bytes"
    assert "filename*=UTF-8''%E5%AF%BC%E5%87%BA.zip" in headers["Content-Disposition"]
    status, headers, body, _ = serve(app, rt, {"Range": "bytes=100-", "If-Range": f'"{md5}"'})
    assert status == 206 and body == DATA[100:]
    status, _, body, _ = serve(app, rt, {"Range": "bytes=-56"})
    assert status == 206 and body == DATA[-56:]


def test_if_range_mismatch_sends_whole_file(app: Any, rt: Any) -> None:
    status, headers, body, _ = serve(app, rt, {"Range": "bytes=100-", "If-Range": '"something-else"'})
    assert status == 200 and body == DATA and "Content-Range" not in headers
    status, _, body, _ = serve(app, rt, {"Range": "bytes=100-", "If-Range": 'W/"weak"'})
    assert status == 200 and body == DATA
    status, _, body, _ = serve(app, rt, {"Range": "bytes=100-", "If-Range": http_date(WHEN)})
    assert status == 206 and body == DATA[100:]
    status, _, body, _ = serve(app, rt, {"Range": "bytes=100-", "If-Range": "Sun, 01 Mar 2020 08:30:00 GMT"})
    assert status == 200 and body == DATA


def test_unsatisfiable_and_not_modified(app: Any, rt: Any) -> None:
    status, headers, body, md5 = serve(app, rt, {"Range": f"bytes={len(DATA)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(DATA)}" and body == b""
    status, _, body, _ = serve(app, rt, {"If-None-Match": f'"{md5}"'})
    assert status == 304 and body == b""
    status, headers, body, _ = serve(app, rt, {})
    assert status == 200 and body == DATA and headers["Content-Length"] == str(len(DATA))


class PresigningStore:
    """A store like S3's: url_for gives a presigned URL, which itself honours Range."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def url_for(self, key: str, *, filename: str, content_type: str, expires: int = 300) -> str:
        return f"https://s3.example/bucket/{key}?X-Amz-Signature=abc"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_s3_redirects_to_presigned_url(app: Any, rt: Any) -> None:
    info = rt.store.put(io.BytesIO(DATA))
    s3 = replace(rt, store=PresigningStore(rt.store))
    with app.test_request_context("/x", headers={"Range": "bytes=0-99"}):
        resp = ranged_response(s3, info.key, info.md5, len(DATA), "a.zip", "application/zip", WHEN)
    assert resp.status_code == 307
    assert resp.headers["Location"].startswith("https://s3.example/bucket/") and "Signature" in resp.headers["Location"]
