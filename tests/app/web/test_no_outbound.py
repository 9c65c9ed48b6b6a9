"""No outbound requests: pages and static files reference nothing outside this server."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.app.web_helpers import Browser

STATIC = Path(__file__).resolve().parents[3] / "app" / "static"
EXTERNAL = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']\s*(?:https?:)?//""", re.I)
CSS_URL = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//|@import""", re.I)

PAGES = ["/login", "/", "/dashboard", "/forms", "/collectors", "/collectors/qr", "/children", "/submissions",
         "/exports", "/users", "/audit", "/account/password"]


def test_pages_load_nothing_from_elsewhere(app: Any, make_user: Any, household: Any) -> None:
    make_user("root", "admin")
    make_user("tashi", "collector", ["540102"])
    b = Browser(app)
    b.login("root")
    for url in PAGES:
        resp = b.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        html = resp.get_data(as_text=True)
        assert not EXTERNAL.search(html), url
        assert not CSS_URL.search(html), url
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "http" not in csp, url


def test_static_files_reference_nothing_outside() -> None:
    # static/vendor/ holds third-party builds (ODK Web Forms, Vue: scripts/vendor_webforms.py) whose text names
    # XML namespaces and project links; that they load nothing from elsewhere is proven in Chromium instead
    # (tests/e2e/test_browser.py::test_try_a_draft_in_the_browser) and enforced by the page's CSP.
    files = [p for p in STATIC.rglob("*")
             if p.suffix in (".css", ".js") and "vendor" not in p.relative_to(STATIC).parts]
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not CSS_URL.search(text), path
        assert not re.search(r"https?://", text), path


def test_s3_endpoint_is_the_only_other_image_origin() -> None:
    from app.web import content_security_policy

    csp = content_security_policy({"STORAGE_URL": "s3://b/p", "S3_ENDPOINT_URL": "https://s3.internal:9000"})
    assert "img-src 'self' data: blob: https://s3.internal:9000;" in csp
