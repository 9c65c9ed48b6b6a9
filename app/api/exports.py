"""Export API: background jobs (create, status, ranged download) and a direct CSV zip for small exports.

    POST /v1/projects/{pid}/exports                   {"form": "household", "format": "csvzip", …} → 202 job
    GET  /v1/projects/{pid}/exports                   the caller's recent jobs
    GET  /v1/projects/{pid}/exports/{id}              status and progress
    GET  /v1/projects/{pid}/exports/{id}/file         the file; Range / If-Range (local store), or 307 (S3)
    GET  /v1/projects/{pid}/forms/{fid}/submissions.csv.zip   direct stream (no media, ≤ DIRECT_MAX rows)

`ranged_response` implements single-range requests (RFC 9110 §14): `bytes=a-b`, `bytes=a-`,
`bytes=-n`; If-Range with the strong ETag (the file's md5) or the Last-Modified date; 416 with
`Content-Range: bytes */size` when no byte is satisfiable; several ranges → the whole file (allowed).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Flask, Response, jsonify, request, stream_with_context
from sqlalchemy import select
from werkzeug.http import http_date

from app import Runtime, runtime
from app.errors import Problem
from app.models import Form
from app.services import audit
from app.services.exports import ExportOptions, jobs
from app.services.exports.csvzip import stream_csvzip
from app.services.exports.tabular import plan_for
from storage import BlobNotFound, content_disposition

from . import bp
from .auth import api_user

DIRECT_MAX = 20_000
CHUNK = 256 * 1024


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
        raise Problem(404, "404.74", f"The file '{filename}' is missing from storage. Export again.") from err

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
            raise Problem(404, "404.73", "There is no such export.")
        if job.status != "done" or not job.blob_key:
            raise Problem(409, "409.70", "This export is not finished yet.")
        key, md5, size, name, kind, at = job.blob_key, job.md5 or "", job.size or 0, job.filename, job.kind, \
            job.finished_at
    parsed = parse_range(request.headers.get("Range"), size)
    if not (isinstance(parsed, tuple) and parsed[0] > 0):  # a resumed part is not a new download
        with rt.db.write() as w:
            audit.record(w, user, "export.download", target=f"export:{job_id}", ip=request.remote_addr or "",
                         filename=name, format=kind)
    return ranged_response(rt, key, md5, size, name, jobs.CONTENT_TYPES.get(kind, "application/octet-stream"),
                           at.replace(microsecond=0) if at else None)


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True) if request.is_json else None
    if data is None:
        data = request.form.to_dict() if request.form else {}
    if not isinstance(data, dict):
        raise Problem(400, "400.76", "Send the export options as a JSON object.")
    return data


@bp.post("/v1/projects/<int:project_id>/exports")
def export_create(project_id: int) -> tuple[Response, int, dict[str, str]]:
    user = api_user()
    body = _body()
    options = ExportOptions.parse(body)
    rt = runtime()
    with rt.db.write() as s:
        form = _form(s, project_id, str(body.get("form") or ""))
        job = jobs.create_job(s, user, form, options, ip=request.remote_addr or "")
        s.flush()
        status = jobs.status_of(job)
    jobs.wake_workers()
    return jsonify(status), 202, {"Location": f"/v1/projects/{project_id}/exports/{status['id']}"}


def _form(session: Any, project_id: int, xml_form_id: str) -> Form:
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None:
        raise Problem(404, "404.72", f"There is no form '{xml_form_id}'.")
    return form


@bp.get("/v1/projects/<int:project_id>/exports")
def export_list(project_id: int) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        return jsonify([jobs.status_of(j) for j in jobs.list_jobs(s, user) if j.project_id == project_id])


@bp.get("/v1/projects/<int:project_id>/exports/<int:job_id>")
def export_status(project_id: int, job_id: int) -> Response:
    user = api_user()
    with runtime().db.session() as s:
        job = jobs.get_job(s, user, job_id)
        if job.project_id != project_id:
            raise Problem(404, "404.73", "There is no such export.")
        return jsonify(jobs.status_of(job))


@bp.get("/v1/projects/<int:project_id>/exports/<int:job_id>/file")
def export_file(project_id: int, job_id: int) -> Response:
    return serve_job_file(runtime(), api_user(), project_id, job_id)


@bp.get("/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions.csv.zip")
def export_direct(project_id: int, xml_form_id: str) -> Response:
    """Central's URL: a small CSV zip streamed straight away (`groupPaths`, `splitSelectMultiples` as in Central)."""
    user = api_user()
    args: dict[str, Any] = request.args.to_dict()
    if "groupPaths" in args:
        args["group_paths"] = args["groupPaths"]
    if "splitSelectMultiples" in args:
        args["split_select"] = args["splitSelectMultiples"]
    if str(args.get("attachments", "false")).lower() in ("true", "1", "yes"):
        raise Problem(409, "409.71", "Exports with media files run in the background: POST /v1/projects/"
                      f"{project_id}/exports with \"media\": true, then download the file when it is done.")
    args["format"], args["media"] = "csvzip", False
    options = ExportOptions.parse(args)
    rt = runtime()
    with rt.db.write() as s:
        plan = plan_for(s, project_id, xml_form_id, user, options)
        if plan.count(s) > DIRECT_MAX:
            raise Problem(409, "409.72", f"More than {DIRECT_MAX} submissions: run this export in the background "
                          f"(POST /v1/projects/{project_id}/exports), it can be resumed if the download breaks.")
        audit.record(s, user, "export.download", target=f"form:{xml_form_id}", ip=request.remote_addr or "",
                     format="csvzip", direct=True, options=options.to_dict())

    def body() -> Iterator[bytes]:
        with rt.db.session() as s:
            yield from stream_csvzip(plan, s, rt.store)

    return Response(stream_with_context(body()), content_type="application/zip",
                    headers={"Content-Disposition": content_disposition(f"{xml_form_id}.zip"),
                             "Cache-Control": "private, no-store"})


def install_worker(app: Flask) -> None:
    """CAREFILE_EXPORT_WORKER: auto (default) starts this process's export worker on its first request,
    except under pytest; true starts it on the first request always; false never (another process runs it)."""
    mode = str(app.config["CAREFILE"].get("EXPORT_WORKER", "auto")).strip().lower()
    if mode in ("false", "0", "no", "off"):
        return
    rt: Runtime = app.extensions["carefile"]
    forced = mode in ("true", "1", "yes", "on")

    @app.before_request
    def _start_export_worker() -> None:
        if forced or "PYTEST_CURRENT_TEST" not in os.environ:
            jobs.ensure_worker(rt.db, rt.store)
