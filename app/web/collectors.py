"""Collector pages for coordinators: list, add one, import many, edit, tokens and Collect QR codes.

Collectors are ODK Central's "app users": each phone is set up by scanning a QR code holding a
personal token URL (/v1/key/<token>/projects/<id>); revoking the token locks that phone out.
"""
from __future__ import annotations

from typing import Any

import segno
from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from app.errors import Problem
from app.i18n import t
from app.models import Form, Project, User
from app.runtime import runtime
from app.services import access, audit
from app.services import forms as form_service
from app.services.identity import collect
from app.services.identity import collectors as collector_service
from app.services.identity import users as user_service
from app.services.identity.collectors import CollectorRow, RowError

from . import bp, client_ip, db_user, register_nav, requires
from .inputs import uploaded_file
from .places import region_field_error

ROLES = ("admin", "coordinator")
register_nav(20, "web.collectors_index", "Collectors", ROLES)

COLUMN_LABELS = {"username": "User name", "display_name": "Display name", "password": "Password",
                 "regions": "Regions", "forms": "Forms"}


def _project_id() -> int:
    return int(current_user.project_id)


def _explain(errors: list[RowError]) -> list[dict[str, Any]]:
    """Row errors with their message and column in the UI language."""
    return [{"row": e.row, "column": t(COLUMN_LABELS[e.column]) if e.column in COLUMN_LABELS else "",
             "field": e.column, "message": t(e.message, **e.params)} for e in errors]


def _forms(session: Any) -> list[Form]:
    return form_service.list_forms(session, _project_id())


def _user_ref(user: User) -> str:
    return f"user:{user.username}"


# ---------------------------------------------------------------- list

@bp.get("/collectors")
@requires(*ROLES)
def collectors_index() -> Any:
    rt = runtime()
    with rt.db.session() as s:
        users = collector_service.list_collectors(s, _project_id(), db_user())
        ids = [u.id for u in users]
        tokens = collector_service.token_statuses(s, ids, rt.config["SECRET_KEY"])
        assigned = collector_service.assignments(s, ids)
        open_count = sum(1 for f in _forms(s) if f.state == "open")
    return render_template("collectors/index.html", users=users, tokens=tokens, assigned=assigned,
                           open_count=open_count)


# ---------------------------------------------------------------- add one

@bp.route("/collectors/new", methods=["GET", "POST"])
@requires(*ROLES)
def collectors_new() -> Any:
    rt = runtime()
    errors: list[dict[str, Any]] = []
    with rt.db.session() as s:
        forms = _forms(s)
    if request.method == "POST":
        row = CollectorRow(row=0, username=request.form.get("username", "").strip(),
                           display_name=request.form.get("display_name", "").strip(),
                           password=request.form.get("password", ""),
                           regions=collector_service.split_list(request.form.get("regions")),
                           forms=request.form.getlist("forms"))
        username = row.username
        with rt.db.write() as s:
            found = collector_service.check_rows(s, _project_id(), [row], db_user())
            if not found:
                user = collector_service.create_collectors(s, project_id=_project_id(), rows=[row],
                                                           realm=rt.config["DIGEST_REALM"],
                                                           key=rt.config["SECRET_KEY"])[0]
                _audit_created(s, user, row)
        errors = _explain(found)
        if not errors:
            flash(t("Collector {name} was added. Scan the QR code with ODK Collect to set up the phone.",
                    name=username))
            return redirect(url_for("web.collectors_qr", u=username))
    by_field = {e["field"]: e["message"] for e in errors}
    return render_template("collectors/new.html", forms=forms, errors=by_field,
                           chosen=set(request.form.getlist("forms"))), (400 if errors else 200)


def _audit_created(session: Any, user: User, row: CollectorRow) -> None:
    audit.record(session, db_user(), "user.create", _user_ref(user), client_ip(), role="collector",
                 regions=user.region_codes, forms=row.forms)
    audit.record(session, db_user(), "user.token", _user_ref(user), client_ip(), issued=True)


# ---------------------------------------------------------------- import many

@bp.route("/collectors/import", methods=["GET", "POST"])
@requires(*ROLES)
def collectors_import() -> Any:
    rt = runtime()
    if request.method == "GET":
        return render_template("collectors/import.html", errors=[], filename="")
    filename = ""
    try:
        data, filename = uploaded_file("file", int(rt.config["MAX_UPLOAD_BYTES"]))
        rows, errors = collector_service.read_roster(data, filename)
    except Problem as problem:
        rows, errors = [], [RowError(0, "", problem.message)]
    if not errors:
        with rt.db.write() as s:
            errors = collector_service.check_rows(s, _project_id(), rows, db_user())
            if not errors:
                created = collector_service.create_collectors(s, project_id=_project_id(), rows=rows,
                                                              realm=rt.config["DIGEST_REALM"],
                                                           key=rt.config["SECRET_KEY"])
                for user, row in zip(created, rows, strict=True):
                    _audit_created(s, user, row)
    if errors:
        return render_template("collectors/import.html", errors=_explain(errors), filename=filename,
                               rows=len(rows)), 400
    flash(t("{n} collectors were added from {file}.", n=len(rows), file=filename))
    return redirect(url_for("web.collectors_index"))


@bp.get("/collectors/import/collectors.csv")
@requires(*ROLES)
def collectors_template() -> Any:
    """An example roster to fill in (UTF-8 with BOM, so Excel opens the Chinese names right)."""
    body = ("username,display_name,password,regions,forms\r\n"
            "zhuoma,卓玛,,540102002001,\r\n"
            "tashi,扎西,a long password,540102002 540102003,household\r\n")
    resp = make_response("\ufeff" + body)
    resp.headers["Content-Type"] = "text/csv; charset=utf-8"
    resp.headers["Content-Disposition"] = "attachment; filename=collectors.csv"
    return resp


# ---------------------------------------------------------------- edit

@bp.route("/collectors/<username>/edit", methods=["GET", "POST"])
@requires(*ROLES)
def collectors_edit(username: str) -> Any:
    rt = runtime()
    errors: dict[str, str] = {}
    if request.method == "POST":
        regions = collector_service.split_list(request.form.get("regions"))
        display_name = request.form.get("display_name", "").strip()
        region_error = region_field_error(regions)
        outside = [code for code in regions if not region_error and not access.covers(db_user(), code)]
        if region_error:
            errors["regions"] = region_error
        elif outside:
            errors["regions"] = t("'{value}' lies outside your own regions; you may only give regions inside them.",
                                  value=outside[0])
        if len(display_name) > 200:
            errors["display_name"] = t("The display name is longer than 200 characters.")
        if not errors:
            with rt.db.write() as s:
                user = collector_service.get_collector(s, _project_id(), username, db_user())
                forms = [f for f in _forms(s) if f.xml_form_id in set(request.form.getlist("forms"))]
                before = {"display_name": user.display_name, "regions": user.region_codes,
                          "forms": collector_service.assignments(s, [user.id])[user.id]}
                user.display_name = display_name or user.username
                user_service.set_regions(s, user, regions)
                collector_service.set_assignments(s, user, forms)
                s.flush()
                after = {"display_name": user.display_name, "regions": sorted(dict.fromkeys(regions)),
                         "forms": sorted(f.xml_form_id for f in forms)}
                changes: dict[str, Any] = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
                if changes:
                    audit.record(s, db_user(), "user.update", _user_ref(user), client_ip(), **changes)
            flash(t("The changes to {name} were saved.", name=username))
            return redirect(url_for("web.collectors_index"))
    with rt.db.session() as s:
        user = collector_service.get_collector(s, _project_id(), username, db_user())
        forms = _forms(s)
        chosen = (set(request.form.getlist("forms")) if request.method == "POST"
                  else set(collector_service.assignments(s, [user.id])[user.id]))
        token = collector_service.token_statuses(s, [user.id], rt.config["SECRET_KEY"])[user.id]
    return render_template("collectors/edit.html", user=user, forms=forms, chosen=chosen, errors=errors,
                           token=token), (400 if errors else 200)


# ---------------------------------------------------------------- tokens

@bp.post("/collectors/<username>/renew")
@requires(*ROLES)
def collectors_renew(username: str) -> Any:
    rt = runtime()
    with rt.db.write() as s:
        user = collector_service.get_collector(s, _project_id(), username, db_user())
        user_service.renew_token(s, user, rt.config["SECRET_KEY"])
        audit.record(s, db_user(), "user.token", _user_ref(user), client_ip(), renewed=True)
    flash(t("{name} has a new QR code; the old one no longer works. Scan the new one on the phone.", name=username))
    return redirect(url_for("web.collectors_qr", u=username))


@bp.post("/collectors/<username>/revoke")
@requires(*ROLES)
def collectors_revoke(username: str) -> Any:
    rt = runtime()
    with rt.db.write() as s:
        user = collector_service.get_collector(s, _project_id(), username, db_user())
        count = user_service.revoke_tokens(s, user)
        audit.record(s, db_user(), "user.revoke", _user_ref(user), client_ip(), tokens=count)
    flash(t("The QR code of {name} was revoked: phones set up with it can no longer connect.", name=username))
    return redirect(url_for("web.collectors_index"))


# ---------------------------------------------------------------- QR codes

def public_url() -> str:
    """The address phones reach this server at."""
    configured = runtime().config.get("PUBLIC_URL")
    return str(configured or (request.host_url.rstrip("/") + request.script_root)).rstrip("/")


@bp.get("/collectors/qr")
@requires(*ROLES)
def collectors_qr() -> Any:
    rt = runtime()
    wanted = set(request.args.getlist("u"))
    base = public_url()
    cards, without = [], []
    with rt.db.session() as s:
        project = s.get(Project, _project_id())
        project_name = project.name if project else t("CareFile")
        users = [u for u in collector_service.list_collectors(s, _project_id(), db_user())
                 if (not wanted or u.username in wanted) and u.active]
        tokens = collector_service.token_statuses(s, [u.id for u in users], rt.config["SECRET_KEY"])
    for user in users:
        tok = tokens[user.id]
        if tok.state != "active" or tok.token is None:
            without.append(user)
            continue
        url = collect.token_server_url(base, tok.token, user.project_id)
        payload = collect.encode_settings(collect.collect_settings(
            url, f"{project_name} · {user.display_name or user.username}"))
        svg = segno.make(payload, error="l").svg_inline(scale=4, border=2, omitsize=True)
        cards.append({"user": user, "url": url, "payload": payload, "svg": svg})
    resp = make_response(render_template("collectors/qr.html", cards=cards, without=without,
                                         configured=bool(rt.config.get("PUBLIC_URL")), base=base))
    # The page holds secrets (each token URL is a password): never cache it.
    resp.headers["Cache-Control"] = "no-store"
    return resp
