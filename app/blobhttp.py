"""Serving stored files over HTTP: S3 → 307 to a presigned URL; local → conditional stream."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Response, request, stream_with_context

from app import Runtime
from app.errors import Problem
from storage import BlobNotFound


def blob_response(rt: Runtime, key: str, md5: str, filename: str, ctype: str) -> Response:
    """Serve a blob: a redirect to a short-lived URL on S3, a conditional stream from local disk."""
    if request.if_none_match.contains(md5):
        resp = Response(status=304)
        resp.set_etag(md5)
        return resp
    url = rt.store.url_for(key, filename=filename, content_type=ctype)
    if url is not None:
        return Response(status=307, headers={"Location": url, "Cache-Control": "no-store"})
    try:
        stream = rt.store.open(key)
    except BlobNotFound as err:
        raise Problem(404, "404.1", f"The file '{filename}' is missing from storage.") from err

    def chunks() -> Any:
        with stream:
            while chunk := stream.read(64 * 1024):
                yield chunk

    resp = Response(stream_with_context(chunks()), content_type=ctype, direct_passthrough=True)
    resp.content_length = rt.store.size(key)
    resp.set_etag(md5)
    resp.headers["Cache-Control"] = "private, no-cache"
    resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    return resp
