"""Personal answers are not kept by caches, and pages run only this server's scripts.

The access matrix (test_access_matrix.py) checks both on every route; these tests pin the mechanism: the
`Cache-Control: no-store` header on the API's, Collect's and the website's answers, and the request's
script nonce in the Content-Security-Policy and on every inline <script> (no 'unsafe-inline', no onclick=).
"""
from __future__ import annotations

import re
from typing import Any

from tests.app.web_helpers import Browser


def test_answers_say_no_store_and_static_files_do_not(app: Any, make_user: Any, household: Any) -> None:
    make_user("boss", "admin")
    web = Browser(app)
    assert web.login("boss").status_code == 302
    for path in ("/", "/forms", "/forms/household", "/login"):
        assert web.get(path).headers["Cache-Control"] == "no-store", path
    api = app.test_client()
    token = api.post("/v1/sessions", json={"email": "boss", "password": "correct horse"}).get_json()["token"]
    resp = api.get("/v1/projects/1/forms", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert api.get("/v1/projects/1/forms").headers["Cache-Control"] == "no-store"  # a refusal too
    static = api.get("/static/app.css")
    static.close()
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def test_inline_scripts_run_by_the_requests_nonce(app: Any, make_user: Any) -> None:
    make_user("boss", "admin")
    web = Browser(app)
    assert web.login("boss").status_code == 302
    nonces = []
    for _ in range(2):
        resp = web.get("/users/new")  # the place picker's inline script
        csp = resp.headers["Content-Security-Policy"]
        scripts = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in scripts and "worker-src" not in scripts
        nonce = re.search(r"'nonce-([A-Za-z0-9_-]{20,})'", scripts)
        assert nonce, csp
        page = resp.get_data(as_text=True)
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page)
        assert inline and all(f'nonce="{nonce.group(1)}"' in attrs for attrs in inline)
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", page)
        nonces.append(nonce.group(1))
    assert nonces[0] != nonces[1]  # a new nonce for every answer


def test_print_buttons_work_without_inline_handlers(app: Any) -> None:
    resp = app.test_client().get("/static/app.js")
    script = resp.get_data(as_text=True)
    resp.close()
    assert "data-print" in script and "window.print()" in script
