"""Request bodies of the JSON API, read with limits: a JSON object, or a submission's XML."""
from __future__ import annotations

from typing import Any

from flask import request

from app import problems
from app.runtime import runtime

MAX_JSON = 250 * 1024


def json_body(limit: int = MAX_JSON, *, empty_ok: bool = False, example: str = "") -> dict[str, Any]:
    """The body as a JSON object, whatever its Content-Type (Central's clients do not all send one): 413 when
    over `limit` bytes, 400 when not an object. `empty_ok`: no body at all reads as {} (bodies whose every
    field is optional); `example` shows a right body in the message."""
    if request.content_length is not None and request.content_length > limit:
        raise problems.JSON_BODY_TOO_LARGE()
    if empty_ok and not request.get_data(cache=True).strip():
        return {}
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise problems.BODY_NOT_JSON_OBJECT(example=f", e.g. {example}" if example else "")
    return body


def xml_body() -> bytes:
    """A submission's XML as the body, up to CAREFILE_MAX_SUBMISSION_BYTES."""
    limit = runtime().config["MAX_SUBMISSION_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise problems.SUBMISSION_TOO_LARGE(limit=limit)
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise problems.SUBMISSION_TOO_LARGE(limit=limit)
    if not data.strip():
        raise problems.SUBMISSION_BODY_MISSING()
    return data


def form_or_json() -> dict[str, Any]:
    """Options sent as JSON or as a form (exports: Central's clients do both)."""
    data = request.get_json(silent=True) if request.is_json else None
    if data is None:
        data = request.form.to_dict() if request.form else {}
    if not isinstance(data, dict):
        raise problems.EXPORT_OPTIONS_NOT_OBJECT()
    return data
