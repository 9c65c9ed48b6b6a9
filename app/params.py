"""Every parameter a client sends is read here: parsed, range-checked, and refused with a clear 4xx.

One place for the api/ and web/ layers (and the request hook below), so no id, page number, date,
keyset cursor or OData option reaches a query unchecked: ids beyond 64 bits, NUL characters
(PostgreSQL refuses them in text), impossible dates and forged cursors become 400/404 answers
with a message that says what was wrong and what to do, never a 500.

Problem codes follow ODK Central's where it has one (lib/util/problem.js): 400.11 a parameter of
the wrong type, 400.22 a value out of range for its type, 400.35 an invalid $skiptoken; 400.18
(unparseable $filter) is raised by app.central.odata_filter.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask, has_request_context, request
from werkzeug.routing import IntegerConverter

from app import problems
from app.errors import Problem

MAX_INT = 2**63 - 1  # BIGINT on PostgreSQL, INTEGER on SQLite: counts, offsets
MAX_ID = 2**31 - 1  # row ids are INTEGER columns: PostgreSQL refuses a larger bound value ("out of range")
MAX_TEXT = 2000  # longest free-text query parameter (search boxes, names)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _msg(template: str, **values: Any) -> str:
    """The message in the page's language on web pages (the templates are in the catalogue), else English."""
    if has_request_context() and request.blueprint == "web":
        from app.i18n import t

        return t(template, **values)
    return template.format(**values) if values else template


# ---------------------------------------------------------------- scalars


def integer(raw: str | None, name: str, *, default: int | None = None, minimum: int = 0,
            maximum: int = MAX_INT) -> int | None:
    """A whole number in [minimum, maximum] (default when absent or empty); 400.11 / 400.22 otherwise."""
    if raw is None or raw.strip() == "":
        return default
    text_ = raw.strip()
    if not re.fullmatch(r"[+-]?\d{1,30}", text_):
        raise problems.PARAM_NOT_A_WHOLE_NUMBER(name=name, value=clip(raw, 40)).add(parameter=name)
    value = int(text_)
    if not minimum <= value <= maximum:
        raise problems.PARAM_OUT_OF_RANGE(name=name, low=minimum, high=maximum).add(parameter=name)
    return value


def day(raw: str | None, name: str) -> date | None:
    """A calendar day written YYYY-MM-DD (years 1900–9998, so local-day arithmetic cannot overflow)."""
    if raw is None or raw.strip() == "":
        return None
    try:
        value = date.fromisoformat(raw.strip()) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()) else None
    except ValueError:
        value = None
    if value is None or not 1900 <= value.year <= 9998:
        raise problems.PARAM_DATE_FORMAT().add(parameter=name)
    return value


def moment(raw: str, name: str) -> datetime:
    """An ISO 8601 date or date-time; a date means midnight UTC; without a zone, UTC."""
    text_ = raw.strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?", text_):
            raise ValueError(text_)
        value = datetime.fromisoformat(text_.replace("Z", "+00:00"))
    except ValueError as err:
        raise problems.PARAM_NOT_A_DATE(name=name, value=clip(raw, 40)).add(parameter=name) from err
    if not 1 < value.year < 9999:
        raise problems.PARAM_DATE_OUT_OF_RANGE(name=name).add(parameter=name)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def text(raw: str | None, name: str, *, max_len: int = MAX_TEXT, default: str = "") -> str:
    """Free text, stripped; control characters refused (PostgreSQL cannot store NUL), length capped."""
    if raw is None:
        return default
    if _CONTROL.search(raw):
        raise problems.PARAM_CONTROL_CHARACTERS(name=name).add(parameter=name)
    return raw.strip()[:max_len]


def clip(value: str, n: int) -> str:
    """A client's value shortened for a message (and its control characters shown escaped)."""
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return shown if len(shown) <= n else shown[:n] + "…"


# ---------------------------------------------------------------- cursors


def page_key(raw: str | None) -> tuple[datetime, int] | None:
    """The web lists' keyset cursor `<microseconds since 1970>.<row id>` (records.encode_key)."""
    if raw is None or raw.strip() == "":
        return None
    m = re.fullmatch(r"(-?\d{1,19})\.(\d{1,19})", raw.strip())
    problem = problems.PAGE_LINK_BROKEN().add(parameter="after")
    if m is None or int(m.group(2)) > MAX_ID:
        raise problem
    try:
        at = _EPOCH + timedelta(microseconds=int(m.group(1)))
    except OverflowError as err:
        raise problem from err
    if not 1 < at.year < 9999:
        raise problem
    return at, int(m.group(2))


def encode_skiptoken(payload: Mapping[str, Any]) -> str:
    """An opaque OData $skiptoken (base64url JSON)."""
    raw = json.dumps(dict(payload), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(raw: str | None, spec: Mapping[str, type]) -> dict[str, Any]:
    """A $skiptoken this server made: a JSON object with exactly spec's keys (int row ids up to MAX_ID,
    timezone-aware ISO datetimes for `datetime`). {} when absent; 400.35 for anything else."""
    if raw is None or raw == "":
        return {}
    invalid = problems.INVALID_SKIPTOKEN()
    if len(raw) > 1000:
        raise invalid
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, RecursionError) as err:
        raise invalid from err
    if not isinstance(data, dict) or set(data) != set(spec):
        raise invalid
    out: dict[str, Any] = {}
    for key, kind in spec.items():
        value = data[key]
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
                raise invalid
            out[key] = value
        elif kind is datetime:
            if not isinstance(value, str) or len(value) > 40:
                raise invalid
            try:
                at = datetime.fromisoformat(value)
            except ValueError as err:
                raise invalid from err
            if at.tzinfo is None or not 1 < at.year < 9999:
                raise invalid
            out[key] = at
        else:  # pragma: no cover - a programming error, not input
            raise TypeError(kind)
    return out


# ---------------------------------------------------------------- the whole request


class BoundedInt(IntegerConverter):
    """`<int:…>` that only matches ids a database column can hold (INTEGER): larger numbers are 404,
    not a 500 from the driver ("int too large", "integer out of range")."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def check_request() -> None:
    """Before every view: path values, query parameters and (web/API) form fields with control characters
    never reach a query. A path value with NUL cannot name anything (404); a parameter with one is a
    bad request (400). Multi-line text (comments) keeps its tabs and line breaks.
    """
    for value in (request.view_args or {}).values():
        if isinstance(value, str) and _CONTROL.search(value):
            raise problems.NOT_FOUND()
    fields = list(request.args.items(multi=True))
    if request.blueprint in ("web", "api") and request.method in ("POST", "PUT", "PATCH"):
        fields += list(request.form.items(multi=True))  # typed into a page: names, regions, comments
    for key, value in fields:
        if _CONTROL.search(key) or _CONTROL.search(value):
            raise problems.FIELD_CONTROL_CHARACTERS(name=clip(key, 40)).add(parameter=clip(key, 40))


def install(app: Flask, renderers: Mapping[str, Callable[[Problem], Any]] | None = None) -> None:
    """Register the bounded `<int:>` converter (before any route is added) and the request check.
    renderers: a blueprint's own rendering of a refused request (OpenRosa XML for Collect); others
    raise the Problem to the application's handlers (JSON for /v1/, a page for the web)."""
    app.url_map.converters["int"] = BoundedInt
    own = dict(renderers or {})

    def checked() -> Any:
        try:
            check_request()
        except Problem as problem:
            render = own.get(request.blueprint or "")
            if render is None:
                raise
            return render(problem)
        return None

    app.before_request(checked)


# ---------------------------------------------------------------- the map feed (submissions.geojson)

GEOJSON_PARAMETERS = ("fieldpath", "submissionID", "submitterId", "reviewState", "start__gt", "start__gte",
                      "end__lt", "end__lte", "limit", "deleted")


def geojson_query(args: Any) -> dict[str, Any]:
    """Central's filters of `submissions.geojson` (args: a MultiDict), checked: `fieldpath`, `submissionID`,
    `submitterId` and `reviewState` (repeatable), `start__gt`/`start__gte`/`end__lt`/`end__lte` (dates),
    `limit`, `deleted` (true: the records in the trash instead). Unknown parameters are refused (a typo
    would silently map everything)."""
    unknown = sorted(k for k in args if k not in GEOJSON_PARAMETERS)
    if unknown:
        raise problems.GEOJSON_PARAMETER_UNKNOWN(name=clip(unknown[0], 40), known=", ".join(GEOJSON_PARAMETERS))
    deleted = str(args.get("deleted", "false")).strip().lower()
    if deleted not in ("true", "false"):
        raise problems.GEOJSON_DELETED_NOT_BOOLEAN()
    return {
        "deleted": deleted == "true",
        "fieldpaths": [text(p, "fieldpath", max_len=500) for p in args.getlist("fieldpath")][:100],
        "ids": [text(i, "submissionID", max_len=255) for i in args.getlist("submissionID")][:1000],
        "submitters": [integer(w, "submitterId", maximum=MAX_ID) for w in args.getlist("submitterId")][:1000],
        "states": [clip(s, 40) for s in args.getlist("reviewState")][:10],
        "ranges": [(name, moment(args[name], name)) for name in ("start__gt", "start__gte", "end__lt", "end__lte")
                   if str(args.get(name) or "").strip()],
        "limit": integer(args.get("limit"), "limit", default=None),
    }
