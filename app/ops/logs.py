"""Logging: plain text or JSON lines (CAREFILE_LOG_FORMAT), each record with the request id.

The request id comes from a well-formed `X-Request-Id` header (a proxy's) or is made up, is sent
back in the response header of the same name, and is attached to every log record written while
the request is handled. Request lines name the route template (`/v1/key/<token>/projects/...`),
never the path or the query string, so no token, child name or search term reaches a log.
"""
from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str] = ContextVar("carefile_request_id", default="-")
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MARK = "_carefile_handler"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


def new_request_id(header: str | None) -> str:
    if header and _WELL_FORMED.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, request_id, msg (+ extra fields, + exc)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def make_formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(fmt: str) -> None:
    """Install one stderr handler on the root logger (once per process; a later call changes its format)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"CAREFILE_LOG_FORMAT must be 'text' or 'json', got {fmt!r}")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        setattr(handler, _MARK, True)
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    handler.setFormatter(make_formatter(fmt))
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


def gunicorn_logconfig(fmt: str) -> dict[str, Any]:
    """gunicorn's own log lines (start-up, worker exits) in the same format, on stderr."""
    formatter: dict[str, Any] = ({"()": "app.ops.logs.JsonFormatter"} if fmt == "json"
                                 else {"format": TEXT_FORMAT})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "app.ops.logs.RequestIdFilter"}},
        "formatters": {"carefile": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "carefile",
                                "filters": ["request_id"], "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": []},  # each worker's create_app installs ours
        "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
    }
