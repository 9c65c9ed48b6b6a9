"""Helpers for web tests: a signed-in browser-like client with CSRF tokens."""
from __future__ import annotations

import re
from typing import Any

from tests.app.conftest import PASSWORD


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)


class Browser:
    def __init__(self, app: Any) -> None:
        self.client = app.test_client()
        self.csrf = ""

    def get(self, url: str, **kw: Any) -> Any:
        resp = self.client.get(url, **kw)
        if resp.content_type.startswith("text/html") and 'name="csrf_token"' in resp.get_data(as_text=True):
            self.csrf = csrf_from(resp.get_data(as_text=True))
        return resp

    def post(self, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        if not self.csrf:
            self.get("/login")
        payload = {"csrf_token": self.csrf, **(data or {})}
        return self.client.post(url, data=payload, **kw)

    def login(self, username: str, password: str = PASSWORD) -> Any:
        self.get("/login")
        return self.post("/login", {"username": username, "password": password})
