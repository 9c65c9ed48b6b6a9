"""Draft testing for ODK Collect: the form's draft under its secret test URL (docs/odk-protocol.md, *Drafts
and form files*).

    /v1/test/<token>/projects/<p>/forms/<f>/draft/formList     only the draft
    /v1/test/<token>/projects/<p>/forms/<f>/draft.xml          its XForm
    /v1/test/<token>/projects/<p>/forms/<f>/draft/manifest     its media files and entity lists
    /v1/test/<token>/projects/<p>/forms/<f>/draft/attachments/<name>
    /v1/test/<token>/projects/<p>/forms/<f>/draft/submission   HEAD 204, POST a test submission

No sign-in (Central's layout: the token is the secret). A wrong, blank or outdated token is 404.
Test submissions go to app.services.forms (kept apart from real data).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from app import problems
from app.blobhttp import file_response
from app.errors import Problem
from app.models import FormDraft
from app.routeaccess import PUBLIC, declare
from app.runtime import Runtime, runtime
from app.services import forms as form_service
from app.services.forms import files as form_files

from . import bp, render

PREFIX = "/v1/test/<token>/projects/<int:project_id>/forms/<xml_form_id>/draft"
NOTE = "draft test URL: the token in the path is the credential; answers only for the form's current draft"

ZH = {
    "404.4": "此测试地址已失效（草稿已发布或放弃）。",
    "400.8": "此提交不属于此草稿表单。",
    "409.10": "此提交所用的表单版本与草稿不同，请更新空白表单后重新填写。",
}


def _problem(problem: Problem) -> Response:
    zh = ZH.get(problem.code)
    if zh:
        body = render.openrosa_message(f"{zh} {problem.message}", "error")
        return Response(body, status=problem.status, content_type=render.XML_TYPE)
    return render.problem_response(problem)


def draft_view(view: Callable[..., Response]) -> Callable[..., Response]:
    """Find the draft the URL names (or answer 404), add the OpenRosa headers, render Problems."""

    @functools.wraps(view)
    def wrapper(token: str, project_id: int, xml_form_id: str, **kwargs: Any) -> Response:
        rt = runtime()
        try:
            with rt.db.write() if request.method == "POST" else rt.db.session() as session:
                draft = form_service.draft_by_token(session, project_id, xml_form_id, token)
                resp = view(rt, session, draft, _base(token, project_id, xml_form_id), **kwargs)
        except RequestEntityTooLarge:
            resp = _problem(problems.TEST_SUBMISSION_TOO_LARGE())
        except Problem as problem:
            resp = _problem(problem)
        resp.headers["X-OpenRosa-Version"] = "1.0"
        resp.headers["X-OpenRosa-Accept-Content-Length"] = str(rt.config["MAX_SUBMISSION_BYTES"])
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return wrapper


def _base(token: str, project_id: int, xml_form_id: str) -> str:
    """Absolute URL of the draft (…/forms/<f>/draft); formList and manifest links start with it."""
    origin = (runtime().config["PUBLIC_URL"] or request.host_url).rstrip("/") + request.script_root
    return f"{origin}/v1/test/{quote(token, safe='')}/projects/{project_id}/forms/{quote(xml_form_id, safe='')}/draft"


@bp.route(PREFIX + "/formList", methods=["GET"], endpoint="draft_form_list")
@declare(PUBLIC, note=NOTE)
@draft_view
def draft_form_list(rt: Runtime, session: Any, draft: FormDraft, base: str) -> Response:
    item = render.FormListItem(
        form_id=draft.form.xml_form_id, name=draft.title, version=draft.version, md5=draft.md5,
        download_url=f"{base}.xml", manifest_url=f"{base}/manifest" if draft.attachments else None)
    return Response(render.form_list([item]), content_type=render.XML_TYPE)


@bp.route(PREFIX + ".xml", methods=["GET"], endpoint="draft_form_xml")
@declare(PUBLIC, note=NOTE)
@draft_view
def draft_form_xml(rt: Runtime, session: Any, draft: FormDraft, base: str) -> Response:
    return Response(draft.xml, content_type="application/xml; charset=utf-8")


@bp.route(PREFIX + "/manifest", methods=["GET"], endpoint="draft_manifest")
@declare(PUBLIC, note=NOTE)
@draft_view
def draft_manifest(rt: Runtime, session: Any, draft: FormDraft, base: str) -> Response:
    # The test URL carries no identity: no one's children; regions.csv with every place.
    items = [render.ManifestItem(e.filename, e.md5, f"{base}/attachments/{quote(e.filename, safe='')}",
                                 entity_list=e.dataset is not None)
             for e in form_files.manifest(session, draft.form.project_id, draft.attachments, None)]
    return Response(render.manifest(items), content_type=render.XML_TYPE)


@bp.route(PREFIX + "/attachments/<filename>", methods=["GET"], endpoint="draft_attachment")
@declare(PUBLIC, note=NOTE)
@draft_view
def draft_attachment(rt: Runtime, session: Any, draft: FormDraft, base: str, filename: str) -> Response:
    return file_response(rt, form_files.phone_file(session, draft.form.project_id, draft.attachments, filename,
                                                   None))


@bp.route(PREFIX + "/submission", methods=["HEAD", "POST"], endpoint="draft_submission")
@declare(PUBLIC, note=NOTE)
@draft_view
def draft_submission(rt: Runtime, session: Any, draft: FormDraft, base: str) -> Response:
    if request.method == "HEAD":
        return Response(status=204)  # Collect's preflight (docs/odk-protocol.md, *Submissions*)
    xml_part = request.files.get("xml_submission_file")
    if xml_part is None:
        raise problems.DRAFT_SUBMISSION_NO_XML_PART()
    xml = xml_part.read()
    files = {}
    for name, part in request.files.items(multi=True):
        if name != "xml_submission_file":
            files.setdefault(name, part.stream)
            if part.filename:
                files.setdefault(part.filename, part.stream)
    receipt = form_service.receive_test_submission(
        session, rt.store, draft, xml=xml, files=files, user_agent=request.headers.get("User-Agent"),
        max_file_bytes=rt.config["MAX_SUBMISSION_BYTES"])
    text = "Test submission received. It is kept with the draft and discarded when the draft is published."
    return Response(render.openrosa_message(f"测试提交成功。 {text}"), status=201, content_type=render.XML_TYPE) \
        if receipt.status == "created" else render.success_response("duplicate", "Test submission received (already "
                                                                    "on the server).")
