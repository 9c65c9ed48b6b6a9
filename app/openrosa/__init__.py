"""OpenRosa endpoints for ODK Collect (formList, forms, manifest, media, submission).

Every endpoint is reachable under three bases (docs/odk-protocol.md, *Form list and form download*):
- /v1/projects/<id>                   user name + password (Digest; Basic only over HTTPS)
- /v1/key/<token>/projects/<id>       a collector's token URL (QR code set-up, no password)
- /                                   the default project (id 1), user name + password
and a form's draft under its test URL /v1/test/<token>/projects/<id>/forms/<f>/draft (draft.py).
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("openrosa", __name__)

from . import draft, views  # noqa: E402,F401  (registers the routes)
