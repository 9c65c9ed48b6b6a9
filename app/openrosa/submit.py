"""The OpenRosa submission POST, once for both ways a request reaches it: the Flask view (app/openrosa/views.py)
and the WSGI fast path in front of Flask (app/openrosa/lean.py). `req` is the werkzeug request either way."""
from __future__ import annotations

from flask import Response
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

from app import problems
from app.errors import Problem
from app.models import User
from app.runtime import Runtime
from app.services.submissions import ingest as submission_service

from . import render
from .auth import AuthChallenge, challenge_response, user_from_credentials, user_from_token

XML_PART = "xml_submission_file"


def answer(rt: Runtime, req: Request, token: str | None, project_id: int, limits: tuple[int | None, int]) -> Response:
    """Everything the OpenRosa wrapper does around a view (views.route), for the submission POST: the
    OpenRosa version header, who is calling, the project, the view, the refusals as OpenRosaResponse.
    `limits`: the request body's cap and the most multipart parts (Flask's MAX_CONTENT_LENGTH and
    MAX_FORM_PARTS), to say which one a 413 from werkzeug's form parser means."""
    with rt.db.request_scope():  # the readers of this request share one connection
        try:
            if req.headers.get("X-OpenRosa-Version", "").strip() != "1.0":
                raise problems.X_OPENROSA_VERSION_HEADER_MISSING()
            user = user_from_token(rt, token) if token is not None else user_from_credentials(rt, req)
            # user.project_id is a foreign key to project.id: when it matches, the project exists.
            if user.project_id != project_id:
                raise problems.NO_SUCH_PROJECT(project_id=project_id)
            resp = receive(rt, req, user, project_id)
        except AuthChallenge as exc:
            resp = challenge_response(rt, exc, req)
        except RequestEntityTooLarge:
            resp = render.problem_response(too_large(rt, req, limits))
        except Problem as problem:
            resp = render.problem_response(problem)
    headers(rt, resp)
    return resp


def headers(rt: Runtime, resp: Response) -> None:
    """What every OpenRosa answer carries: the protocol version and the largest submission Collect may send."""
    resp.headers["X-OpenRosa-Version"] = "1.0"
    resp.headers["X-OpenRosa-Accept-Content-Length"] = str(rt.config["MAX_SUBMISSION_BYTES"])
    resp.headers.setdefault("Content-Language", "en")


def receive(rt: Runtime, req: Request, user: User, project_id: int) -> Response:
    """Store the submission of a signed-in caller (app.services.submissions.ingest) and answer Collect."""
    if user.role not in ("collector", "coordinator", "admin"):
        raise problems.MAY_NOT_SEND_SUBMISSIONS()
    files = req.files
    xml_part = files.get(XML_PART)
    if xml_part is None:
        raise problems.SUBMISSION_NO_XML_PART()
    xml = xml_part.read()
    incoming: list[submission_service.IncomingFile] = []
    for name, part in files.items(multi=True):
        if name == XML_PART:
            continue
        incoming.append(submission_service.IncomingFile(name=name, stream=part.stream, content_type=part.mimetype))
        if part.filename and part.filename != name:
            incoming.append(submission_service.IncomingFile(part.filename, part.stream, part.mimetype))

    result = submission_service.receive_submission(
        rt.db, rt.store, project_id=project_id, user=user, xml=xml, files=incoming,
        device_id=req.args.get("deviceID"), user_agent=req.headers.get("User-Agent"),
        max_file_bytes=rt.config["MAX_SUBMISSION_BYTES"],
    )
    key = {"created": "201", "duplicate": "duplicate", "edited": "edited"}[result.status]
    if result.held:
        key = "held"
    resp = render.success_response(key, result.message)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def too_large(rt: Runtime, req: Request, limits: tuple[int | None, int]) -> Problem:
    """Werkzeug says 413 for two reasons: the body is over MAX_CONTENT_LENGTH, or it has more multipart
    parts than MAX_FORM_PARTS (Flask's default 1,000). A phone can fix only the first by taking smaller
    photos, so the second gets its own 400 saying what to do."""
    size_limit, parts = limits
    length = req.content_length
    if length is not None and (size_limit is None or length <= size_limit):
        return problems.TOO_MANY_FILES(parts=parts)
    return problems.SUBMISSION_FILE_PART_TOO_LARGE(limit=rt.config["MAX_SUBMISSION_BYTES"] / 1_000_000)

