"""Serving stored files over HTTP: S3 → 307 to a presigned URL; local → conditional stream.

`ranged_response` implements single-range requests (RFC 9110 §14): `bytes=a-b`, `bytes=a-`,
`bytes=-n`; If-Range with the strong ETag (the file's md5) or the Last-Modified date; 416 with
`Content-Range: bytes */size` when no byte is satisfiable; several ranges → the whole file (allowed).
Shared by the API and the web pages (export downloads).
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import Response, request, stream_with_context
from werkzeug.http import http_date

from app import problems
from app.runtime import Runtime
from app.services import audit
from app.services.exports import jobs
from app.services.forms.files import FormFile
from storage import BlobNotFound, content_disposition

CHUNK = 256 * 1024


def file_response(rt: Runtime, f: FormFile, cache: str = "private, no-cache") -> Response:
    """A form's file (app.services.forms.files): bytes made for the user (conditional on their md5), or a blob.
    Phones revalidate made files (`no-cache`); the browser's pages ask for `no-store`."""
    if f.blob_key is not None:
        return blob_response(rt, f.blob_key, f.md5, f.filename, f.content_type)
    resp = Response(f.data, content_type=f.content_type)
    resp.set_etag(f.md5)
    resp.headers["Cache-Control"] = cache
    return resp.make_conditional(request)


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
        raise problems.FILE_MISSING_STORAGE(filename=filename) from err

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


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) byte of a single satisfiable range; "unsatisfiable"; or None (serve it all)."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_s == "":
            n = int(last_s)
            if n <= 0:
                return "unsatisfiable"
            return (max(0, size - n), size - 1) if size else "unsatisfiable"
        first = int(first_s)
        last = int(last_s) if last_s != "" else size - 1
    except ValueError:
        return None
    if first >= size >= 0 and (last_s == "" or last >= first):
        return "unsatisfiable"
    if first < 0 or last < first:
        return None
    return first, min(last, size - 1)


def _if_range_ok(etag: str, last_modified: datetime | None) -> bool:
    value = request.headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(("W/", '"')):
        return value == f'"{etag}"'  # strong comparison: a weak tag never matches
    return last_modified is not None and value == http_date(last_modified)


def ranged_response(rt: Runtime, key: str, etag: str, size: int, filename: str, ctype: str,
                    last_modified: datetime | None = None) -> Response:
    """Serve a stored file with Range support (local store) or redirect to a presigned URL (S3)."""
    url = rt.store.url_for(key, filename=filename, content_type=ctype)
    if url is not None:
        return Response(status=307, headers={"Location": url, "Cache-Control": "no-store"})
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{etag}"', "Cache-Control": "private, no-cache",
               "Content-Disposition": content_disposition(filename)}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    rng = parse_range(request.headers.get("Range"), size) if _if_range_ok(etag, last_modified) else None
    if rng == "unsatisfiable":
        return Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = rng if isinstance(rng, tuple) else (0, size - 1)
    try:
        stream = rt.store.open(key)
    except BlobNotFound as err:
        raise problems.EXPORT_FILE_MISSING(filename=filename) from err

    def body() -> Iterator[bytes]:
        with stream:
            if first:
                stream.seek(first)
            left = last - first + 1
            while left > 0 and (chunk := stream.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk

    resp = Response(body(), status=206 if isinstance(rng, tuple) else 200, content_type=ctype,
                    headers=headers, direct_passthrough=True)
    resp.content_length = max(0, last - first + 1)
    if isinstance(rng, tuple):
        resp.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return resp


def serve_job_file(rt: Runtime, user: Any, project_id: int, job_id: int) -> Response:
    """Shared by the API and the web page: the job's file, audited (once per download, not per resumed part)."""
    with rt.db.session() as s:
        job = jobs.get_job(s, user, job_id)
        if job.project_id != project_id:
            raise problems.NO_SUCH_EXPORT()
        if job.status == "expired":
            raise problems.EXPORT_EXPIRED()
        if job.status != "done" or not job.blob_key:
            raise problems.EXPORT_NOT_FINISHED()
        key, md5, size, name, kind, at = job.blob_key, job.md5 or "", job.size or 0, job.filename, job.kind, \
            job.finished_at
    parsed = parse_range(request.headers.get("Range"), size)
    if not (isinstance(parsed, tuple) and parsed[0] > 0):  # a resumed part is not a new download
        with rt.db.write() as w:
            audit.record(w, user, "export.download", target=f"export:{job_id}", ip=request.remote_addr or "",
                         filename=name, format=kind)
    return ranged_response(rt, key, md5, size, name, jobs.CONTENT_TYPES.get(kind, "application/octet-stream"),
                           at.replace(microsecond=0) if at else None)
