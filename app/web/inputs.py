"""HTML input handling shared by the pages: uploaded files, lists typed into a text field."""
from __future__ import annotations

from pathlib import PurePath

from flask import request

from app import problems


def uploaded_file(field: str, max_bytes: int) -> tuple[bytes, str]:
    """The bytes and base name of the file sent in field; a Problem the page can show otherwise."""
    upload = request.files.get(field)
    if upload is None or not upload.filename:
        raise problems.NO_FILE_CHOSEN()
    data = upload.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise problems.WEB_FILE_TOO_LARGE(mb=max_bytes // (1024 * 1024))
    if not data:
        raise problems.FILE_EMPTY()
    # Only the base name is kept: a client's file name never becomes a path.
    name = PurePath(upload.filename.replace("\\", "/")).name or "upload"
    return data, name
