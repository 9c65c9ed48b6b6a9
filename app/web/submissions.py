"""Submissions: forms, one form's submissions (filters, keyset pages), one submission with its
answers, files, versions and review."""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from app import params
from app.blobhttp import blob_response
from app.errors import Problem
from app.i18n import t
from app.models import REVIEW_STATES
from app.runtime import runtime
from app.services import audit
from app.services.children.trash import TRASH_DAYS
from app.services.reports import dashboard as dash
from app.services.submissions import records

from . import bp, client_ip, db_user, register_nav, requires

ROLES = ("admin", "coordinator", "manager")
PAGE_SIZE = 50


def _review_labels() -> dict[str, str]:
    return {"received": t("Received"), "has_issues": t("Has issues"), "approved": t("Approved"),
            "rejected": t("Rejected"), "edited": t("Edited")}


@bp.app_template_global("mgr_review")
def mgr_review(state: str) -> str:
    return _review_labels().get(state, state)


@bp.app_template_global("mgr_review_class")
def mgr_review_class(state: str) -> str:
    return {"approved": "green", "has_issues": "orange", "rejected": "red", "edited": "yellow"}.get(state, "")


register_nav(30, "web.submissions", "Submissions", ROLES)


@bp.get("/submissions")
@requires(*ROLES)
def submissions() -> Any:
    user = db_user()
    with runtime().db.session() as s:
        forms = records.list_forms(s, user.project_id, user)
    return render_template("submissions/forms.html", forms=forms)


def _date_arg(name: str) -> date | None:
    return params.day(request.args.get(name), name)


def _page_size() -> int:
    try:
        return params.integer(request.args.get("size"), "size", default=PAGE_SIZE, minimum=1, maximum=200) \
            or PAGE_SIZE
    except Problem:
        return PAGE_SIZE  # a hand-edited size falls back to the default page


def _after() -> str:
    """The keyset cursor of the next page, checked (a broken link is a 400 page, not a 500)."""
    raw = request.args.get("after", "")
    params.page_key(raw)
    return raw.strip()


@bp.get("/submissions/<form_id>")
@requires(*ROLES)
def submissions_list(form_id: str) -> Any:
    user = db_user()
    args = request.args
    state = args.get("review_state", "")
    filters = records.SubmissionFilters(
        received_from=_date_arg("from"), received_to=_date_arg("to"),
        region="".join(ch for ch in args.get("region", "") if ch.isdigit())[:12],
        review_state=state if state in REVIEW_STATES else "", submitter=args.get("submitter", "").strip()[:150])
    size = _page_size()
    with runtime().db.session() as s:
        form = records.get_form_info(s, user.project_id, user, form_id)
        rows, next_key = records.list_submissions(s, user.project_id, user, form_id, filters,
                                                  after=_after(), limit=size)
        names = dash.region_names(s, user.project_id)
    kept = {k: v for k, v in {
        "from": args.get("from", ""), "to": args.get("to", ""), "region": filters.region,
        "review_state": filters.review_state, "submitter": filters.submitter,
        "size": str(size) if size != PAGE_SIZE else ""}.items() if v}
    return render_template("submissions/list.html", form=form, rows=rows, next_key=next_key, filters=kept,
                           first_page=not args.get("after"), review_states=REVIEW_STATES, names=names)


@bp.get("/submissions/<form_id>/<instance_id>")
@requires(*ROLES)
def submissions_view(form_id: str, instance_id: str) -> Any:
    user = db_user()
    version = request.args.get("version") or None
    with runtime().db.write() as s:
        rec = records.record_detail(s, user.project_id, user, form_id, instance_id, version)
        audit.record(s, user, "submission.view", target=f"submission:{form_id}/{instance_id}", ip=client_ip(),
                     unmasked=rec.unmasked)
        names = dash.region_names(s, user.project_id)
    return render_template("submissions/view.html", rec=rec, names=names,
                           settable=records.SETTABLE_STATES, phone_records=_phone_records(), trash_days=TRASH_DAYS)


def _phone_records() -> dict[str, str]:
    """Words for what the phone records by itself (XLSForm metadata questions, by their usual names)."""
    return {"start": t("Started filling in"), "end": t("Finished filling in"), "today": t("Day filled in"),
            "username": t("Username on the phone"), "deviceid": t("Device ID"), "phonenumber": t("Phone number"),
            "email": t("Email")}


@bp.post("/submissions/<form_id>/<instance_id>/review")
@requires(*ROLES)
def submissions_review(form_id: str, instance_id: str) -> Any:
    user = db_user()
    with runtime().db.write() as s:
        records.review(s, user.project_id, user, form_id, instance_id, state=request.form.get("review_state", ""),
                       comment=request.form.get("comment", ""), ip=client_ip())
    flash(t("The review was saved."))
    return redirect(url_for("web.submissions_view", form_id=form_id, instance_id=instance_id) + "#review")


@bp.get("/submissions/<form_id>/<instance_id>/files/<name>")
@requires(*ROLES)
def submissions_file(form_id: str, instance_id: str, name: str) -> Any:
    """A submission's photo or file: region-checked in the service, every download audited."""
    user = db_user()
    rt = runtime()
    with rt.db.write() as s:
        att = records.get_attachment(s, user.project_id, user, form_id, instance_id, name,
                                     version=request.args.get("version") or None)
        key, md5, ctype = att.blob_key, att.md5, att.content_type or "application/octet-stream"
        audit.record(s, user, "attachment.download", target=f"submission:{form_id}/{instance_id}/{name}",
                     ip=client_ip())
    assert key is not None and md5 is not None
    return blob_response(rt, key, md5, name, ctype)
