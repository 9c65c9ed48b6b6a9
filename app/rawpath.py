"""Encoded slashes in a path value (docs/odk-protocol.md, *Central's REST API and OData*).

Central routes on the raw request path and decodes each path value after routing, so a form id such as
`'=+/*-451%/%'` (pyodk's tests use it) is reached as `/v1/projects/1/forms/%3D%2B%2F*-451%25%2F%25`.
A WSGI server hands over PATH_INFO already decoded, where that `%2F` has become a `/` that splits the
value into two path segments (404). `EncodedSlashes` rebuilds PATH_INFO from the raw request target with
each `%2F` turned into `SLASH`, a Unicode noncharacter that no client sends; the converters installed by
`install` turn it back into `/` in the view's arguments and write `/` as `%2F` when building URLs.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from flask import Flask, request
from werkzeug.routing import PathConverter, UnicodeConverter

SLASH = "\ufdd0"
_SLASH_BYTES = SLASH.encode("utf-8")
_ENCODED_SLASH = re.compile(r"%2f", re.IGNORECASE)
_ENCODED_SLASH_BYTES = re.compile(rb"%2f", re.IGNORECASE)


class EncodedSlashes:
    """WSGI middleware: an encoded slash in the raw path stays inside its path segment."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        if "%2" in raw and _ENCODED_SLASH.search(raw.split("?", 1)[0]):
            path = _kept(raw.split("?", 1)[0], environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", ""))
            if path is not None:
                environ["PATH_INFO"] = path
        return self.wsgi_app(environ, start_response)


def _kept(raw_path: str, script_name: str, path_info: str) -> str | None:
    """PATH_INFO with the raw path's `%2F` as SLASH, or None when the raw path is not this request's
    (a proxy rewrote it): then the request is routed as the server decoded it."""
    if "://" in raw_path:  # an absolute-form request target
        raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
    # WSGI strings carry bytes as latin-1 characters
    pieces = [unquote_to_bytes(p) for p in _ENCODED_SLASH_BYTES.split(raw_path.encode("latin-1", "replace"))]
    plain = b"/".join(pieces).decode("latin-1")
    kept = _SLASH_BYTES.join(pieces).decode("latin-1")
    if plain == path_info:
        return kept
    if script_name and plain == script_name + path_info and kept.startswith(script_name):
        return kept[len(script_name):]
    return None


def plain_path() -> str:
    """This request's path with its encoded slashes as `/` (what the client's URL decodes to)."""
    return request.path.replace(SLASH, "/")


class SegmentConverter(UnicodeConverter):
    """The default `<name>` converter: one path segment, in which `%2F` stands for `/`."""

    def to_python(self, value: str) -> Any:
        return value.replace(SLASH, "/")

    def to_url(self, value: Any) -> str:
        return quote(str(value), safe="!$&'()*+,:;=@")


class SlashPathConverter(PathConverter):
    """`<path:name>`: slashes, encoded or not, are slashes."""

    def to_python(self, value: str) -> Any:
        return value.replace(SLASH, "/")


def install(app: Flask) -> None:
    """Before any route is added: the converters (the middleware is added by create_app)."""
    app.url_map.converters["default"] = SegmentConverter
    app.url_map.converters["string"] = SegmentConverter
    app.url_map.converters["path"] = SlashPathConverter
