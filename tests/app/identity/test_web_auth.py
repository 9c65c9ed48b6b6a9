"""Web sign-in: sessions, cookies, CSRF, throttling, password change, languages, audit."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.models import AuditEvent
from tests.app.web_helpers import Browser


def test_sign_in_and_out(app: Any, make_user: Any) -> None:
    make_user("mgr", "manager", ["540102"])
    b = Browser(app)
    assert b.get("/").status_code == 302
    resp = b.login("mgr")
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    assert b.get("/").status_code == 200
    cookie = resp.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert b.post("/logout").status_code == 302
    assert b.get("/").status_code == 302


def test_secure_cookie_when_public_url_is_https(app_config: dict[str, Any], make_user: Any, rt: Any) -> None:
    from app import create_app

    app2 = create_app({**app_config, "PUBLIC_URL": "https://carefile.example.org"})
    make_user("mgr", "manager")
    resp = Browser(app2).login("mgr")
    assert "Secure" in resp.headers.get("Set-Cookie", "")
    app2.extensions["carefile"].db.dispose()


def test_wrong_password_and_throttling(app: Any, make_user: Any, rt: Any) -> None:
    make_user("mgr", "manager")
    b = Browser(app)
    for _ in range(5):
        resp = b.login("mgr", "wrong password")
        assert resp.status_code == 401
    resp = b.login("mgr")  # right password, but locked for now
    assert resp.status_code == 429
    assert "请等待 1 分钟后再试" in resp.get_data(as_text=True)  # the first wait is a minute, then it grows
    assert 0 < int(resp.headers["Retry-After"]) <= 60
    with rt.db.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions.count("login.failed") == 6 and "login.ok" not in actions


def test_collectors_cannot_use_the_website(app: Any, make_user: Any) -> None:
    make_user("tashi", "collector")
    resp = Browser(app).login("tashi")
    assert resp.status_code == 403 and "ODK Collect" in resp.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(app: Any, make_user: Any) -> None:
    make_user("mgr", "manager")
    client = app.test_client()
    resp = client.post("/login", data={"username": "mgr", "password": "correct horse"})
    assert resp.status_code == 400
    b = Browser(app)
    b.login("mgr")
    resp = b.client.post("/logout", data={"csrf_token": "forged"})
    assert resp.status_code == 400
    assert b.get("/").status_code == 200  # still signed in


def test_change_password_signs_out_other_sessions(app: Any, make_user: Any) -> None:
    make_user("mgr", "manager")
    a, other = Browser(app), Browser(app)
    a.login("mgr")
    other.login("mgr")
    a.get("/account/password")
    resp = a.post("/account/password", {"current": "correct horse", "new": "new secret 1", "repeat": "new secret 1"})
    assert resp.status_code == 302
    assert a.get("/").status_code == 200
    assert other.get("/").status_code == 302
    assert Browser(app).login("mgr", "new secret 1").status_code == 302


def test_language_switch(app: Any, make_user: Any) -> None:
    make_user("mgr", "manager")
    b = Browser(app)
    b.login("mgr")
    assert "退出" in b.get("/").get_data(as_text=True)
    b.post("/language", {"lang": "en", "next": "/"})
    page = b.get("/").get_data(as_text=True)
    assert "Sign out" in page and "退出" not in page
    b.post("/logout")
    b.login("mgr")  # the choice is remembered for the user
    assert "Sign out" in b.get("/").get_data(as_text=True)


def test_open_redirect_is_not_followed(app: Any, make_user: Any) -> None:
    make_user("mgr", "manager")
    b = Browser(app)
    b.get("/login")
    resp = b.post("/login?next=//evil.example/x", {"username": "mgr", "password": "correct horse"})
    assert resp.headers["Location"] == "/"
