"""Setting up ODK Collect: the token server URL and the settings QR code (docs/odk-protocol.md, *Collect's
settings QR code*)."""
from __future__ import annotations

import base64
import json
import zlib
from typing import Any


def token_server_url(public_url: str, token: str, project_id: int) -> str:
    return f"{public_url.rstrip('/')}/v1/key/{token}/projects/{project_id}"


def collect_settings(server_url: str, project_name: str, username: str | None = None,
                     password: str | None = None) -> dict[str, Any]:
    general: dict[str, Any] = {
        "server_url": server_url,
        "form_update_mode": "match_exactly",
        "periodic_form_updates_check": "every_one_hour",
        "autosend": "wifi_and_cellular",
    }
    if username is not None:
        general["username"] = username
    if password is not None:
        general["password"] = password
    return {"general": general, "admin": {}, "project": {"name": project_name, "icon": "档", "color": "#1f6f5c"}}


def encode_settings(settings: dict[str, Any]) -> str:
    """What Collect scans: JSON → zlib (with header) → base64 without line breaks."""
    raw = json.dumps(settings, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(raw)).decode("ascii")


def decode_settings(payload: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(payload)).decode("utf-8"))
    return data
