"""OpenRosa request handlers. HTTP only: parsing, storing and deciding happen in app.services."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from app import faults, problems
from app.blobhttp import file_response
from app.errors import Problem
from app.models import Form, User
from app.routeaccess import COLLECTORS, declare
from app.runtime import Runtime, runtime
from app.services import access
from app.services import forms as form_service
from app.services.forms import files as form_files

from . import bp, render, submit
from .auth import AuthChallenge, challenge_response, user_from_credentials, user_from_token

log = logging.getLogger(__name__)

BASES = (
    ("/v1/projects/<int:project_id>", "creds", {}),
    ("/v1/key/<token>/projects/<int:project_id>", "token", {}),
    ("", "root", {"project_id": 1}),
)


def route(rule: str, endpoint: str, methods: list[str], openrosa_header: bool) -> Callable[..., Any]:
    """Register an OpenRosa view under every base, wrapped with auth and OpenRosa headers."""

    def decorator(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(project_id: int, token: str | None = None, **kwargs: Any) -> Response:
            rt = runtime()
            with rt.db.request_scope():  # the readers of this request share one connection
                try:
                    if openrosa_header and request.headers.get("X-OpenRosa-Version", "").strip() != "1.0":
                        raise problems.X_OPENROSA_VERSION_HEADER_MISSING()
                    user = user_from_token(rt, token) if token is not None else user_from_credentials(rt, request)
                    # user.project_id is a foreign key to project.id: when it matches, the project exists
                    # (no query needed on every request).
                    if user.project_id != project_id:
                        raise problems.NO_SUCH_PROJECT(project_id=project_id)
                    resp = view(rt, user, project_id, _base(project_id, token), **kwargs)
                except AuthChallenge as exc:
                    resp = challenge_response(rt, exc, request)
                except RequestEntityTooLarge:
                    resp = render.problem_response(submit.too_large(rt, request, _limits()))
                except Problem as problem:
                    resp = render.problem_response(problem)
            submit.headers(rt, resp)
            return resp

        # Any account may talk OpenRosa (formList, forms, entity lists scoped to its regions); which
        # forms it may fill and what its submissions may change is decided in the services.
        declare(COLLECTORS, scoped=True)(wrapper)
        for base, kind, defaults in BASES:
            extra = {"defaults": defaults} if defaults else {}
            bp.add_url_rule(base + rule, f"{endpoint}_{kind}", wrapper, methods=methods, **extra)
        return wrapper

    return decorator


faults.register(bp, render.fault_response, bilingual=True)


def _limits() -> tuple[int | None, int]:
    from flask import current_app

    return current_app.config.get("MAX_CONTENT_LENGTH"), current_app.config.get("MAX_FORM_PARTS") or 1000


def _base(project_id: int, token: str | None) -> str:
    """Absolute URL of the base this request came through (links keep the token prefix)."""
    cfg = runtime().config
    origin = (cfg["PUBLIC_URL"] or request.host_url).rstrip("/") + request.script_root
    if token is not None:
        return f"{origin}/v1/key/{token}/projects/{project_id}"
    if request.path.startswith("/v1/projects/"):
        return f"{origin}/v1/projects/{project_id}"
    return origin


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@route("/formList", "form_list", ["GET"], openrosa_header=True)
def form_list(rt: Runtime, user: User, project_id: int, base: str) -> Response:
    wanted = request.args.get("formID")
    with rt.db.session() as session:
        items = []
        for form in form_service.forms_for_phone(session, user, project_id):
            fv = form.current_version
            if fv is None or (wanted and form.xml_form_id != wanted):
                continue
            fid = _quote(form.xml_form_id)
            items.append(render.FormListItem(
                form_id=form.xml_form_id, name=fv.title, version=fv.version, md5=fv.md5,
                download_url=f"{base}/forms/{fid}.xml",
                manifest_url=f"{base}/forms/{fid}/manifest" if fv.attachments else None,
            ))
    return Response(render.form_list(items), content_type=render.XML_TYPE)


def _fillable(session: Any, user: User, project_id: int, xml_form_id: str) -> Form:
    form = form_service.get_form(session, project_id, xml_form_id)
    if not access.may_fill(session, user, form):
        raise problems.FORM_NOT_ASSIGNED(xml_form_id=xml_form_id)
    if form.state == "closed" and user.role == "collector":
        # As Central: a closing form stays downloadable (it still accepts submissions), a closed
        # one is no longer served to phones.
        raise problems.FORM_CLOSED(xml_form_id=xml_form_id)
    return form


@route("/forms/<xml_form_id>.xml", "form_xml", ["GET"], openrosa_header=False)
def form_xml(rt: Runtime, user: User, project_id: int, base: str, xml_form_id: str) -> Response:
    with rt.db.session() as session:
        fv = _fillable(session, user, project_id, xml_form_id).current_version
        assert fv is not None
        resp = Response(fv.xml, content_type="application/xml; charset=utf-8")
    resp.set_etag(fv.md5)
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp.make_conditional(request)


@route("/forms/<xml_form_id>/manifest", "manifest", ["GET"], openrosa_header=True)
def manifest(rt: Runtime, user: User, project_id: int, base: str, xml_form_id: str) -> Response:
    items = []
    with rt.db.session() as session:
        form = _fillable(session, user, project_id, xml_form_id)
        fv = form.current_version
        assert fv is not None
        fid = _quote(form.xml_form_id)
        # Entity lists and regions.csv are made for this user (app.services.forms.files): their hash is theirs.
        for entry in form_files.manifest(session, project_id, fv.attachments, user):
            url = f"{base}/forms/{fid}/attachments/{_quote(entry.filename)}"
            integrity = f"{base}/datasets/{_quote(entry.dataset)}/integrity" if entry.dataset else None
            items.append(render.ManifestItem(entry.filename, entry.md5, url, entity_list=entry.dataset is not None,
                                             integrity_url=integrity))
    return Response(render.manifest(items), content_type=render.XML_TYPE)


@route("/forms/<xml_form_id>/attachments/<filename>", "attachment", ["GET"], openrosa_header=False)
def attachment(rt: Runtime, user: User, project_id: int, base: str, xml_form_id: str, filename: str) -> Response:
    with rt.db.session() as session:
        fv = _fillable(session, user, project_id, xml_form_id).current_version
        assert fv is not None
        found = form_files.phone_file(session, project_id, fv.attachments, filename, user)
    return file_response(rt, found)


@route("/submission", "submission", ["GET", "HEAD", "POST"], openrosa_header=True)
def submission(rt: Runtime, user: User, project_id: int, base: str) -> Response:
    if request.method != "POST":
        # The HEAD preflight: Collect requires 204 and reads X-OpenRosa-Accept-Content-Length
        # from it to decide how to split large submissions (docs/odk-protocol.md, *Submissions*).
        return Response(status=204)
    # Most POSTs never get here: app/lean.py answers them in front of Flask with the same code (submit.receive).
    return submit.receive(rt, request, user, project_id)


@route("/datasets/<name>/integrity", "integrity", ["GET"], openrosa_header=True)
def integrity(rt: Runtime, user: User, project_id: int, base: str, name: str) -> Response:
    """Which offline-created entities still exist; Collect drops deleted ones (docs/odk-protocol.md, *Manifest,
    media and entity lists*)."""
    from xml.sax.saxutils import quoteattr

    from app.services.children import lists as entity_lists

    ids = [i for i in request.args.get("id", "").split(",") if i.strip()]
    with rt.db.session() as session:
        states = entity_lists.integrity(session, project_id, name, user, ids)
    rows = "".join(f"\n    <entity id={quoteattr(uid)}><deleted>{'true' if deleted else 'false'}</deleted></entity>"
                   for uid, deleted in states)
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<data>\n  <entities>{rows}\n  </entities>\n</data>\n'
    return Response(body, content_type=render.XML_TYPE)
