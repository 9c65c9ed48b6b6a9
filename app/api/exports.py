"""Export API: background jobs (create, status, ranged download) and Central's direct CSV zip.

    POST /v1/projects/{pid}/exports                   {"form": "household", "format": "csvzip", …} → 202 job
    GET  /v1/projects/{pid}/exports                   the caller's recent jobs
    GET  /v1/projects/{pid}/exports/{id}              status and progress
    GET  /v1/projects/{pid}/exports/{id}/file         the file; Range / If-Range (local store), or 307 (S3)
    GET  /v1/projects/{pid}/forms/{fid}/submissions.csv.zip   direct stream of any size, as Central (media
                                                              unless ?attachments=false); also POST, and submissions.csv

Ranged downloads are served by app.blobhttp.ranged_response.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, request, stream_with_context
from sqlalchemy import select

from app import problems
from app.blobhttp import serve_job_file
from app.central import odata
from app.central.odata_filter import parse_filter
from app.models import Form, SubmissionVersion
from app.routeaccess import READERS
from app.runtime import Runtime
from app.services import audit
from app.services.exports import ExportOptions, decrypt, jobs
from app.services.exports.csvzip import stream_csv, stream_csvzip
from app.services.exports.tabular import plan_for
from app.services.forms import keys
from storage import content_disposition

from . import Call, endpoint, etags
from .bodies import form_or_json
from .odata import _submission_filter_fields

CHUNK = 256 * 1024
FORM = "/v1/projects/<int:project_id>/forms/<xml_form_id>"





@endpoint("/v1/projects/<int:project_id>/exports", roles=READERS, methods=["POST"], scoped=True, tx="none")
def export_create(call: Call, project_id: int) -> Any:
    body = form_or_json()
    options = ExportOptions.parse(body)
    with call.rt.db.write() as s:
        form = _form(s, project_id, str(body.get("form") or ""))
        job = jobs.create_job(s, call.user, form, options, ip=call.ip)
        s.flush()
        status = jobs.status_of(job)
    jobs.wake_workers()
    return status, 202, {"Location": f"/v1/projects/{project_id}/exports/{status['id']}"}


def _form(session: Any, project_id: int, xml_form_id: str) -> Form:
    form = session.scalar(select(Form).where(Form.project_id == project_id, Form.xml_form_id == xml_form_id))
    if form is None:
        raise problems.EXPORT_NO_SUCH_FORM(xml_form_id=xml_form_id)
    return form


@endpoint("/v1/projects/<int:project_id>/exports", roles=READERS, note="the caller's own jobs")
def export_list(call: Call, project_id: int) -> Any:
    return [jobs.status_of(j) for j in jobs.list_jobs(call.session, call.user) if j.project_id == project_id]


@endpoint("/v1/projects/<int:project_id>/exports/<int:job_id>", roles=READERS, note="the caller's own jobs")
def export_status(call: Call, project_id: int, job_id: int) -> Any:
    job = jobs.get_job(call.session, call.user, job_id)
    if job.project_id != project_id:
        raise problems.NO_SUCH_EXPORT()
    return jobs.status_of(job)


@endpoint("/v1/projects/<int:project_id>/exports/<int:job_id>/file", roles=READERS, tx="none",
          note="the caller's own jobs")
def export_file(call: Call, project_id: int, job_id: int) -> Any:
    return serve_job_file(call.rt, call.user, project_id, job_id)


def _central_plan(call: Call, project_id: int, xml_form_id: str, *, media_default: bool
                  ) -> tuple[Any, Any, bool, str, Response | None]:
    """The export plan of Central's `submissions.csv.zip` / `submissions.csv` query (docs/odk-protocol.md,
    *The CSV export*):
    `attachments` (media, default on for the zip), `groupPaths`, `splitSelectMultiples`, `deletedFields`
    (questions only earlier versions had; default off as Central), `$filter` on `__system` fields;
    plus CareFile's own export options (labels, sensitive, region, …). Rows newest first, ReviewState as
    Central writes it. Also the ETag of the answer, and a 304 when the client's `If-None-Match` has it
    (GET only: a POST may carry passphrases)."""
    user = call.user
    args: dict[str, Any] = request.args.to_dict()
    if request.method == "POST":  # Central takes the options (and passphrases) in the body as well
        args.update({k: v for k, v in form_or_json().items() if isinstance(v, str | bool | int)})
    if "groupPaths" in args:
        args["group_paths"] = args["groupPaths"]
    if "splitSelectMultiples" in args:
        args["split_select"] = args["splitSelectMultiples"]
    # Central leaves out questions no longer in the form unless deletedFields=true
    args["deleted_fields"] = args.get("deletedFields", args.get("deleted_fields", "false"))
    media = str(args.get("attachments", "true" if media_default else "false")).strip().lower() not in (
        "false", "0", "no", "off")
    args["format"], args["media"] = "csvzip", media
    options = ExportOptions.parse(args)
    rt = call.rt
    with rt.db.write() as s:
        plan = plan_for(s, project_id, xml_form_id, user, options)
        plan.newest_first = plan.central_review = True
        filter_text = str(args.get("$filter") or "")
        if filter_text:  # Central's __system fields and, beyond Central, the form's questions (as OData)
            hidden = set() if options.sensitive else set(plan.sensitive_paths)
            fields = {**odata.form_filter_fields(plan.schema, SubmissionVersion.data, hidden),
                      **_submission_filter_fields()}
            plan.extra_where.append(parse_filter(filter_text, fields))
        # the rows' fingerprint where the rows will be read (the replica, if any): a lagging replica must not
        # get a tag naming data it has not got yet (the client would keep the older body under it)
        with rt.db.bulk_read() as rs:
            tag = etags.etag_for(user, [plan.form.current_version_id, plan.fingerprint(rs)])
        if request.method == "GET" and (unchanged := etags.not_modified(tag)) is not None:
            return rt, plan, media, tag, unchanged
        audit.record(s, user, "export.download", target=f"form:{xml_form_id}", ip=call.ip,
                     format="csvzip", direct=True, options=options.to_dict(), filter=filter_text or None)
    return rt, plan, media, tag, None


@endpoint(f"{FORM}/submissions.csv.zip", roles=READERS, methods=["GET", "POST"], scoped=True, tx="none",
          note="rows of the caller's regions; sensitive fields masked unless allowed and asked")
def export_direct(call: Call, project_id: int, xml_form_id: str) -> Any:
    """Central's URL: the CSV zip streamed straight into the response, media files included unless
    `?attachments=false` (each photo copied from the blob store in chunks: no temporary copy)."""
    rt, plan, _media, tag, unchanged = _central_plan(call, project_id, xml_form_id, media_default=True)
    if unchanged is not None:
        return unchanged
    private_key = _managed_key(rt, plan, f"user:{call.user.id}") if request.method == "POST" else None

    def body() -> Iterator[bytes]:
        with rt.db.bulk_read() as s:
            if private_key is not None:
                yield from decrypt.stream_decrypted_csvzip(s, rt.store, plan, private_key)
            else:
                yield from stream_csvzip(plan, s, rt.store)

    resp = Response(stream_with_context(body()), content_type="application/zip",
                    headers={"Content-Disposition": content_disposition(f"{xml_form_id}.zip"),
                             "Cache-Control": "private, no-store"})
    if private_key is None:  # a decrypted answer is never cached or revalidated
        etags.tagged(resp, tag)
    return resp


def _managed_key(rt: Runtime, plan: Any, who: str) -> Any:
    """Central's managed-key export: the passphrase comes in the POST body (form-urlencoded or JSON) under
    the key's id (`{"<keyId>": "<passphrase>"}`); encrypted records are decrypted on the fly, nothing
    decrypted is stored. Only POST: a passphrase in the URL would land in access logs."""
    body = form_or_json()
    with rt.db.session() as s:
        key = keys.form_key(s, plan.form)
    passphrase = body.get(str(key.id)) if key is not None else None
    if key is None or passphrase is None:
        return None
    return keys.unlock(rt.db, key, str(passphrase), who)  # guesses throttled per user and key


@endpoint(f"{FORM}/submissions/keys", roles=READERS)
def export_keys(call: Call, project_id: int, xml_form_id: str) -> Any:
    """Central's list of the encryption keys a form's submissions use (managed keys carry their hint;
    the id is the field name for the passphrase in POST submissions.csv.zip)."""
    return keys.keys_json(call.session, _form(call.session, project_id, xml_form_id))


@endpoint(f"{FORM}/submissions.csv", roles=READERS, methods=["GET", "POST"], scoped=True, tx="none",
          note="rows of the caller's regions; sensitive fields masked unless allowed and asked")
def export_direct_csv(call: Call, project_id: int, xml_form_id: str) -> Any:
    """Central's `submissions.csv`: the main table only (UTF-8 with BOM)."""
    rt, plan, _media, tag, unchanged = _central_plan(call, project_id, xml_form_id, media_default=False)
    if unchanged is not None:
        return unchanged

    def body() -> Iterator[bytes]:
        with rt.db.bulk_read() as s:
            yield from stream_csv(plan, s)

    return etags.tagged(Response(stream_with_context(body()), content_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": content_disposition(f"{xml_form_id}.csv"),
                                          "Cache-Control": "private, no-store"}), tag)


def install_worker(app: Flask) -> Callable[[], None] | None:
    """CAREFILE_EXPORT_WORKER: auto (default) starts this process's export worker on its first request,
    except under pytest; true starts it on the first request always; false never (another process runs it).
    Returns the starter (the submission fast path, app/lean.py, calls it too), None when there is none."""
    mode = str(app.config["CAREFILE"].get("EXPORT_WORKER", "auto")).strip().lower()
    if mode in ("false", "0", "no", "off"):
        return None
    rt: Runtime = app.extensions["carefile"]
    forced = mode in ("true", "1", "yes", "on")

    @app.before_request
    def _start_export_worker() -> None:
        if forced or "PYTEST_CURRENT_TEST" not in os.environ:
            jobs.ensure_worker(rt.db, rt.store, int(rt.config.get("EXPORT_KEEP_DAYS", 7)))

    return _start_export_worker
