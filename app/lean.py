"""The OpenRosa submission POST in front of Flask: the request phones make by the thousand, without Flask's
per-request machinery.

For a submission, Flask's own work — request and application contexts, the session interface, URL
matching, the before/after hooks of every blueprint, context-local proxies — cost about as much CPU as
parsing the XML and writing the rows (docs/benchmarks.md, *Ingest*). This WSGI middleware answers
`POST /submission`, `POST /v1/projects/<id>/submission` and `POST /v1/key/<token>/projects/<id>/submission`
itself, with the same code as the Flask view (app/openrosa/submit.py: the OpenRosa version header, token URL,
Digest or Basic, the project, storing, every refusal as an OpenRosaResponse) and the same answer: what the
hooks add (no-store, the request id, the metrics and the request's log line: app/ops) and the 503 of a
fault (app/faults.py) are added here. tests/app/submissions/test_lean_path.py sends the same requests through
both and compares the answers.

Only plain requests take this way: a token of the token alphabet, an id a column can hold, no encoded
characters in the path, no control characters in the query string. Anything else goes on to Flask (the view
is still there) before a byte of the body is read, so Flask's checks and answers apply to it unchanged.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any
from urllib.parse import unquote_plus

from flask import Flask
from werkzeug.exceptions import InternalServerError
from werkzeug.wrappers import Request, Response

from app import faults, multipart
from app.openrosa import render, submit
from app.ops.logs import REQUEST_ID, new_request_id
from app.ops.views import record
from app.params import _CONTROL, MAX_ID
from app.runtime import Runtime

_ID = r"[1-9][0-9]{0,9}"
_PATH = re.compile(rf"(?:/v1/key/([A-Za-z0-9_!$-]+)/projects/({_ID})|/v1/projects/({_ID}))?/submission")
RULES = ("/submission", "/v1/key/<token>/projects/<int:project_id>/submission",
         "/v1/projects/<int:project_id>/submission")
# False sends every submission through Flask (the tests compare both ways).
ENABLED = True

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LeanSubmissions:
    """WSGI middleware: plain OpenRosa submission POSTs answered here, everything else by `app`."""

    def __init__(self, flask_app: Flask, app: WSGIApp, on_request: Callable[[], None] | None = None) -> None:
        self.app = app
        self.rt: Runtime = flask_app.extensions["carefile"]
        cfg = flask_app.config
        # Flask's request takes its limits from the app's config; a plain werkzeug request from its class.
        self.request_class = type("SubmissionRequest", (_SubmissionRequest,), {
            "max_content_length": cfg.get("MAX_CONTENT_LENGTH"),
            "max_form_memory_size": cfg.get("MAX_FORM_MEMORY_SIZE"),
            "max_form_parts": cfg.get("MAX_FORM_PARTS") or 1000,
        })
        self.limits = (cfg.get("MAX_CONTENT_LENGTH"), cfg.get("MAX_FORM_PARTS") or 1000)
        self.on_request = on_request

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or not ENABLED:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        found = _PATH.fullmatch(path) if path.endswith("/submission") else None
        if found is None or not _plain(environ):
            return self.app(environ, start_response)
        token, pid = found.group(1), found.group(2) or found.group(3)
        project_id = int(pid) if pid else 1
        if project_id > MAX_ID:
            return self.app(environ, start_response)
        rule = RULES[0] if pid is None else RULES[1] if token is not None else RULES[2]
        return self.handle(environ, start_response, token, project_id, rule)

    def handle(self, environ: dict[str, Any], start_response: Callable[..., Any], token: str | None,
               project_id: int, rule: str) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = REQUEST_ID.set(new_request_id(environ.get("HTTP_X_REQUEST_ID")))
        req = self.request_class(environ)
        try:
            if self.on_request is not None:
                self.on_request()
            resp = self._answer(req, token, project_id)
            resp.headers["Cache-Control"] = "no-store"
            files = req.files if "files" in req.__dict__ else None  # parsed: the body was a multipart form
            record(rule, "POST", resp.status_code, time.perf_counter() - started,
                   files if files is not None else _NO_FILES)
            resp.headers["X-Request-Id"] = REQUEST_ID.get()
            return resp(environ, start_response)
        finally:
            req.close()  # the parts spooled to temporary files (as Flask does when the request ends)
            REQUEST_ID.reset(request_id)

    def _answer(self, req: Request, token: str | None, project_id: int) -> Response:
        rt = self.rt
        try:
            return submit.answer(rt, req, token, project_id, self.limits)
        except faults.HANDLED as exc:
            return faults.respond(exc, render.fault_response, bilingual=True) or _internal_error(req, exc)
        except Exception as exc:  # noqa: BLE001 - as Flask: a programming error is a 500, logged with its traceback
            return _internal_error(req, exc)


class _SubmissionRequest(Request):
    """A werkzeug request whose small multipart body is read in one go (app/multipart.py), else by werkzeug."""

    def _load_form_data(self) -> None:
        if "form" in self.__dict__:
            return
        parsed = multipart.read_small(self.environ, self.max_form_parts or 1000, self.max_form_memory_size,
                                      self.max_content_length)
        if parsed is None:
            super()._load_form_data()
            return
        self.__dict__["stream"] = BytesIO()
        self.__dict__["form"], self.__dict__["files"] = parsed


class _NoFiles:
    """No multipart files (the request was refused before its body was read)."""

    @staticmethod
    def items(multi: bool = False) -> list[tuple[str, Any]]:
        return []


_NO_FILES = _NoFiles()


def _plain(environ: dict[str, Any]) -> bool:
    """No encoded character in the path (a `%2F` inside a segment, app/rawpath.py) and no control character in
    the query string (app/params.check_request refuses those): such requests are Flask's to answer."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is not None and "%" in raw.partition("?")[0]:
        return False
    query = environ.get("QUERY_STRING", "")
    return not query or _CONTROL.search(unquote_plus(query)) is None


def _internal_error(req: Request, exc: BaseException) -> Response:
    logging.getLogger("app").error("Exception on %s [%s]", req.path, req.method, exc_info=exc)
    return InternalServerError().get_response()
