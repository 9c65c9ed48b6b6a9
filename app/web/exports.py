"""Exports page: choose form, format, options and filters → background job → progress → download.

Also the child's file as a ZIP (`web.child_zip`), linked from the child page.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify, redirect, render_template, request, stream_with_context, url_for

from app import params
from app.blobhttp import serve_job_file
from app.central import geojson as geo
from app.central import shapes as central
from app.errors import Problem
from app.i18n import current_language, t
from app.models import REVIEW_STATES
from app.runtime import runtime
from app.services import audit
from app.services import forms as form_service
from app.services.exports import ExportOptions, jobs, may_see_sensitive
from app.services.exports.childzip import child_archive, stream_child_zip
from app.services.schemas import schema_of
from storage import content_disposition

from . import bp, client_ip, db_user, register_nav, requires

ROLES = ("admin", "coordinator", "manager")
register_nav(40, "web.exports", "Exports", ROLES)

FORMAT_NAMES = {"csvzip": "CSV (ZIP)", "xlsx": "Excel (XLSX)", "json": "JSON"}
STATUS_NAMES = {"queued": "Waiting", "running": "Running", "done": "Done", "failed": "Failed", "expired": "Expired"}


def _labels() -> dict[str, str]:
    return {"codes": t("Codes"), "zh": t("Chinese labels"), "en": t("English labels")}


def _states() -> dict[str, str]:
    names = {"received": t("Received"), "has_issues": t("Has issues"), "approved": t("Approved"),
             "rejected": t("Rejected"), "edited": t("Edited")}
    return {s: names.get(s, s) for s in REVIEW_STATES}


def _page(error: str | None = None, values: dict[str, Any] | None = None, status: int = 200) -> Any:
    user = db_user()
    with runtime().db.session() as s:
        published = [f for f in form_service.list_forms(s, user.project_id) if f.current_version is not None]
        forms = [(f.xml_form_id, f.current_version.title, f.current_version.version) for f in published]
        mapped = [(f.xml_form_id, f.current_version.title) for f in published
                  if geo.geo_fields(schema_of(f.current_version))]
        recent = [jobs.status_of(j) for j in jobs.list_jobs(s, user, limit=10)]
    lang = current_language()
    defaults = {"labels": lang if lang in ("zh", "en") else "codes", "format": "csvzip", "group_paths": "1"}
    return render_template("exports/index.html", forms=forms, recent=recent, error=error,
                           values=values or defaults, formats=FORMAT_NAMES, label_modes=_labels(),
                           states=_states(), status_names=STATUS_NAMES,
                           may_sensitive=may_see_sensitive(user), mapped=mapped), status


@bp.get("/exports")
@requires(*ROLES)
def exports() -> Any:
    return _page()


@bp.post("/exports")
@requires(*ROLES)
def exports_create() -> Any:
    user = db_user()
    raw: dict[str, Any] = request.form.to_dict()
    raw["review_states"] = request.form.getlist("review_states")
    for flag in ("split_select", "group_paths", "media", "sensitive"):
        raw[flag] = flag in request.form
    rt = runtime()
    try:
        options = ExportOptions.parse(raw)
        with rt.db.write() as s:
            form = form_service.get_form(s, user.project_id, raw.get("form", ""))
            job = jobs.create_job(s, user, form, options, ip=client_ip())
            s.flush()
            job_id = job.id
    except Problem as problem:
        return _page(problem.translated(t), raw, problem.status)
    jobs.wake_workers()
    return redirect(url_for("web.exports_job", job_id=job_id))


@bp.get("/exports/<int:job_id>")
@requires(*ROLES)
def exports_job(job_id: int) -> Any:
    with runtime().db.session() as s:
        status = jobs.status_of(jobs.get_job(s, db_user(), job_id))
    return render_template("exports/job.html", job=status, formats=FORMAT_NAMES, status_names=STATUS_NAMES,
                           labels={k: t(v) for k, v in STATUS_NAMES.items()})


@bp.get("/exports/<int:job_id>/status")
@requires(*ROLES)
def exports_status(job_id: int) -> Response:
    with runtime().db.session() as s:
        status = jobs.status_of(jobs.get_job(s, db_user(), job_id))
    if status["status"] == "done":
        status["download"] = url_for("web.exports_download", job_id=job_id)
    return jsonify(status)


@bp.get("/exports/<int:job_id>/download")
@requires(*ROLES)
def exports_download(job_id: int) -> Response:
    user = db_user()
    return serve_job_file(runtime(), user, user.project_id, job_id)


@bp.get("/forms/<xml_form_id>/submissions.geojson")
@requires(*ROLES)
def form_geojson(xml_form_id: str) -> Response:
    """The form's locations as GeoJSON for a mapping tool (QGIS, uMap, geojson.io): the same feed as the
    API's `submissions.geojson` (app/central/geojson.py), the user's regions, sensitive locations masked."""
    user = db_user()
    rt = runtime()
    with rt.db.write() as s:
        form = central.get_form(s, user, user.project_id, xml_form_id)
        query = params.geojson_query(request.args)
        body, _red = geo.collection(s, user, form, query, geo.submissions_query(user, form, query))
        audit.record(s, user, "export.download", target=f"form:{xml_form_id}", ip=client_ip(), format="geojson",
                     records=len(body["features"]))
    return Response(json.dumps(body, ensure_ascii=False), content_type="application/geo+json",
                    headers={"Content-Disposition": content_disposition(f"{xml_form_id}.geojson"),
                             "Cache-Control": "private, no-store"})


@bp.get("/children/<uid>/archive.zip")
@requires(*ROLES)
def child_zip(uid: str) -> Response:
    """One child's whole file as a ZIP: summary.html (printable) + photos and signatures."""
    user = db_user()
    rt = runtime()
    lang = current_language()
    with rt.db.write() as s:
        archive = child_archive(s, user.project_id, user, uid, lang)
        audit.record(s, user, "export.download", target=f"child:{archive.uid}", ip=client_ip(), format="childzip",
                     files=len(archive.files))
    html = render_template("exports/child_summary.html", **archive.context)
    return Response(stream_with_context(stream_child_zip(archive, html, rt.store)), content_type="application/zip",
                    headers={"Content-Disposition": content_disposition(archive.filename),
                             "Cache-Control": "private, no-store"})
