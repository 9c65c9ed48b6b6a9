"""The JSON API as one signed-in user: a bearer session from POST /v1/sessions, sent with every request."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

PASSWORD = "correct horse"  # the password tests/app/conftest.py gives every user it makes


class ApiClient:
    """`ApiClient(app, "dolma").get(url)`; `.post(url, json=…)`, `.put`, `.patch`, `.delete`, `.send(method, …)`
    pass keyword arguments on to Flask's test client, headers merged with the bearer token."""

    def __init__(self, app: Any, username: str, password: str = PASSWORD) -> None:
        self.client = app.test_client()
        resp = self.client.post("/v1/sessions", json={"email": username, "password": password})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        self.token = str(resp.get_json()["token"])
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def send(self, method: str, url: str, **kw: Any) -> Any:
        headers = {**self.headers, **(kw.pop("headers", None) or {})}
        return self.client.open(url, method=method.upper(), headers=headers, **kw)

    def get(self, url: str, **kw: Any) -> Any:
        return self.send("GET", url, **kw)

    def post(self, url: str, body: Any = None, **kw: Any) -> Any:
        if body is not None:
            kw["json"] = body
        return self.send("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> Any:
        return self.send("PUT", url, **kw)

    def patch(self, url: str, **kw: Any) -> Any:
        return self.send("PATCH", url, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.send("DELETE", url, **kw)

    def follow(self, url: str) -> list[dict[str, Any]]:
        """Every row of an OData feed, following @odata.nextLink."""
        rows: list[dict[str, Any]] = []
        while url:
            body = self.get(url).get_json()
            rows += body["value"]
            nxt = body.get("@odata.nextLink")
            if nxt:
                assert "$skiptoken" in parse_qs(urlsplit(nxt).query)
            url = f"{urlsplit(nxt).path}?{urlsplit(nxt).query}" if nxt else ""
        return rows
