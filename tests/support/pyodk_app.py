"""pyodk's own Client talking to the app in this process: its requests go through a requests adapter
into Flask's test client, with the URL exactly as pyodk encodes it (RAW_URI keeps `%2F`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

BASE = "http://carefile.test"


class FlaskAdapter(BaseAdapter):
    def __init__(self, app: Any) -> None:
        super().__init__()
        self.client = app.test_client()

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url or "")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = request.body
        if body is not None and not isinstance(body, bytes | str):
            body = body.read() if hasattr(body, "read") else b"".join(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        resp = self.client.open(target, method=request.method, headers=headers, data=body)
        out = requests.Response()
        out.status_code = resp.status_code
        out.headers = CaseInsensitiveDict(dict(resp.headers))
        out._content = resp.get_data()
        out.encoding = get_encoding_from_headers(out.headers)
        out.url = request.url or ""
        out.request = request
        out.reason = resp.status.partition(" ")[2]
        return out

    def close(self) -> None:
        pass


def pyodk_client(app: Any, tmp_path: Path, username: str, password: str) -> Any:
    """A pyodk Client signed in as `username` (it posts /v1/sessions itself on the first call)."""
    from pyodk.client import Client

    config = tmp_path / f"{username}_pyodk.toml"
    config.write_text(f'[central]\nbase_url = "{BASE}"\nusername = "{username}"\npassword = "{password}"\n'
                      'default_project_id = 1\n')
    client = Client(config_path=config, cache_path=tmp_path / f"{username}_pyodk_cache.toml")
    client.session.mount(f"{BASE}/", FlaskAdapter(app))
    return client
