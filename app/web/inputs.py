"""HTML input handling shared by the pages: uploaded files, lists typed into a text field."""
from __future__ import annotations

from pathlib import PurePath

from flask import request

from app.errors import Problem
from app.i18n import t


def uploaded_file(field: str, max_bytes: int) -> tuple[bytes, str]:
    """The bytes and base name of the file sent in field; a Problem the page can show otherwise."""
    upload = request.files.get(field)
    if upload is None or not upload.filename:
        raise Problem(400, "400.61", t("Choose a file to upload."))
    data = upload.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Problem(413, "413.3", t("The file is larger than {mb} MB.", mb=max_bytes // (1024 * 1024)))
    if not data:
        raise Problem(400, "400.62", t("The file is empty."))
    # Only the base name is kept: a client's file name never becomes a path.
    name = PurePath(upload.filename.replace("\\", "/")).name or "upload"
    return data, name
