"""A small multipart/form-data body read in one go: ODK Collect's submission POST (the XML and a few photos).

werkzeug's streaming parser handles every shape a multipart body may take, event by event, at a cost near that
of storing the submission. A body Collect sends is one regular shape — CRLF line breaks, parts whose headers are
`Content-Disposition: form-data; name="…"; filename="…"` and a Content-Type, no preamble — and a body of at most
`SMALL` bytes is read here in one call and split at its boundaries. Anything else (a larger body, a header
this reader does not take, LF line breaks, a missing last boundary, more parts than allowed) goes to werkzeug
unchanged, from the same bytes, so its answers and errors stay the ones a client gets.
(tests/app/submissions/test_multipart.py compares both readers on many bodies.)"""
from __future__ import annotations

import re
from io import BytesIO
from typing import Any

from werkzeug.datastructures import FileStorage, Headers, ImmutableMultiDict

SMALL = 2 * 1024 * 1024
_TYPE = re.compile(r'multipart/form-data;\s*boundary=(?:"([^"\\\r\n]{1,70})"|([0-9A-Za-z\'()+_,\-./:=?]{1,70}))\s*',
                   re.IGNORECASE)
_HEADER = re.compile(rb"([A-Za-z][A-Za-z0-9-]*): ?([\x20-\x7e]*)")
_DISPOSITION = re.compile(r'form-data; name="([^"\\\x00-\x1f]*)"(?:; filename="([^"\\\x00-\x1f]*)")?')


Parsed = tuple[ImmutableMultiDict[str, str], ImmutableMultiDict[str, FileStorage]]


def read_small(environ: dict[str, Any], max_parts: int, max_memory: int | None,
               max_length: int | None) -> Parsed | None:
    """The form fields and files of a small, regular multipart body; None when werkzeug must read it — then
    `environ["wsgi.input"]` holds what was read, so werkzeug reads the same bytes."""
    found = _TYPE.fullmatch(environ.get("CONTENT_TYPE", ""))
    length_text = environ.get("CONTENT_LENGTH", "")
    if found is None or not length_text.isdigit():
        return None
    length = int(length_text)
    if length > SMALL or (max_length is not None and length > max_length):
        return None
    body = environ["wsgi.input"].read(length) if length else b""
    if len(body) != length:  # the client went away: werkzeug says so as it does for any body
        environ["wsgi.input"] = BytesIO(body)
        return None
    parsed = _split(body, (found.group(1) or found.group(2)).encode("ascii"), max_parts, max_memory)
    if parsed is None:
        environ["wsgi.input"] = BytesIO(body)
    return parsed


def _split(body: bytes, boundary: bytes, max_parts: int, max_memory: int | None) -> Parsed | None:
    delimiter = b"\r\n--" + boundary
    data = body if body.startswith(b"\r\n") else b"\r\n" + body
    if not data.startswith(delimiter + b"\r\n"):
        return None
    # Every boundary at the start of a CRLF line and ended by CRLF, but the last one, ended by `--`: werkzeug
    # also takes a bare CR or LF around a boundary, and this reader does not.
    seen = data.count(b"--" + boundary)
    if seen != data.count(delimiter) or seen != data.count(delimiter + b"\r\n") + 1 \
            or data.count(delimiter + b"--") != 1:
        return None
    end = data.rfind(delimiter + b"--")
    if end < 0 or data[end + len(delimiter) + 2:] not in (b"", b"\r\n"):
        return None
    segments = data[len(delimiter) + 2:end].split(delimiter + b"\r\n")
    if len(segments) > max_parts:
        return None
    fields: list[tuple[str, str]] = []
    files: list[tuple[str, FileStorage]] = []
    memory = 0
    for segment in segments:
        head, blank, content = segment.partition(b"\r\n\r\n")
        if not blank:
            return None
        headers = Headers()
        for line in head.split(b"\r\n"):
            header = _HEADER.fullmatch(line)
            if header is None:
                return None
            headers.add(header.group(1).decode("ascii"), header.group(2).decode("ascii").strip(" "))
        disposition = _DISPOSITION.fullmatch(headers.get("Content-Disposition", ""))
        if disposition is None or len(headers.getlist("Content-Disposition")) != 1:
            return None
        name, filename = disposition.group(1), disposition.group(2)
        if filename is None:
            if "Content-Type" in headers:  # werkzeug decodes the field by its charset
                return None
            memory += len(content)
            if max_memory is not None and memory > max_memory:
                return None
            fields.append((name, content.decode("utf-8", "replace")))
        else:
            files.append((name, FileStorage(BytesIO(content), filename, name, headers=headers)))
    return ImmutableMultiDict(fields), ImmutableMultiDict(files)
