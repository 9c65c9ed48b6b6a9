"""A Collect-like HTTP Digest client over Flask's test client (computed independently of app code)."""
from __future__ import annotations

import hashlib
import os
import re
from typing import Any


def _md5(s: str) -> str:
    return hashlib.md5(s.encode("utf-8")).hexdigest()


def parse_challenge(header: str) -> dict[str, str]:
    assert header.startswith("Digest "), header
    return {k: v1 or v2 for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header[7:])}


def authorization(user: str, password: str, method: str, uri: str, chal: dict[str, str], nc: int,
                  cnonce: str | None = None) -> str:
    cnonce = cnonce or os.urandom(8).hex()
    ha1 = _md5(f"{user}:{chal['realm']}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    ncs = f"{nc:08x}"
    resp = _md5(f"{ha1}:{chal['nonce']}:{ncs}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{chal["realm"]}", nonce="{chal["nonce"]}", uri="{uri}", '
            f'response="{resp}", qop=auth, nc={ncs}, cnonce="{cnonce}", algorithm=MD5, opaque="{chal.get("opaque", "")}"')


class DigestClient:
    """Answers 401 challenges like OkHttp's digest authenticator, then reuses the nonce with nc+1."""

    def __init__(self, client: Any, user: str, password: str) -> None:
        self.client = client
        self.user = user
        self.password = password
        self.chal: dict[str, str] | None = None
        self.nc = 0

    def request(self, method: str, uri: str, openrosa: bool = True, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if openrosa:
            headers.setdefault("X-OpenRosa-Version", "1.0")
        data = kw.pop("data", None)
        for _ in range(2):
            h = dict(headers)
            if self.chal is not None:
                self.nc += 1
                h["Authorization"] = authorization(self.user, self.password, method, uri, self.chal, self.nc)
            body = data() if callable(data) else data
            resp = self.client.open(uri, method=method, headers=h, data=body, **kw)
            if resp.status_code != 401:
                return resp
            chal = resp.headers.get("WWW-Authenticate", "")
            if not chal.startswith("Digest"):
                return resp
            self.chal = parse_challenge(chal)
            self.nc = 0
        return resp

    def get(self, uri: str, **kw: Any) -> Any:
        return self.request("GET", uri, **kw)

    def head(self, uri: str, **kw: Any) -> Any:
        return self.request("HEAD", uri, **kw)

    def post(self, uri: str, **kw: Any) -> Any:
        return self.request("POST", uri, **kw)
