"""Sessions end on the server (issue 8, item 8): sign-out, password change or reset, role change and
deactivation end web sessions and API tokens; deactivation and role change also end token URLs."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.models import User
from app.services.identity import users as user_service
from tests.app.conftest import PASSWORD
from tests.app.web_helpers import Browser

OR = {"X-OpenRosa-Version": "1.0"}


def _token(app: Any, name: str, password: str = PASSWORD) -> str:
    resp = app.test_client().post("/v1/sessions", json={"email": name, "password": password})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.get_json()["token"])


def _api_status(app: Any, token: str) -> int:
    return int(app.test_client().get("/v1/projects", headers={"Authorization": f"Bearer {token}"}).status_code)


def _replay(app: Any, browser: Browser) -> Any:
    """A second client carrying a copy of the browser's session cookie (a stolen or saved cookie)."""
    cookie = browser.client.get_cookie("carefile_session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("carefile_session", cookie.value)
    return thief


def test_cookie_replayed_after_sign_out_is_sent_to_the_login_page(app: Any, make_user: Callable[..., Any]) -> None:
    make_user("mgr", "manager", ["540102"])
    b = Browser(app)
    b.login("mgr")
    b.get("/")
    thief = _replay(app, b)
    assert thief.get("/").status_code == 200  # the copy works while the session lasts ...
    assert b.post("/logout").status_code == 302
    resp = thief.get("/")  # ... and not after signing out
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    assert Browser(app).login("mgr").status_code == 302  # signing in again works


def _admin(app: Any, make_user: Callable[..., Any]) -> Browser:
    make_user("root", "admin")
    admin = Browser(app)
    admin.login("root")
    admin.get("/users")
    return admin


def _id(rt: Any, name: str) -> int:
    with rt.db.session() as s:
        return int(s.query(User.id).filter(User.username == name).scalar())


@pytest.mark.parametrize("change", ["reset", "deactivate-reactivate", "role"])
def test_admin_changes_end_web_sessions_and_api_tokens(app: Any, rt: Any, make_user: Callable[..., Any],
                                                       change: str) -> None:
    admin = _admin(app, make_user)
    make_user("mgr", "manager", ["540102"])
    uid = _id(rt, "mgr")
    token = _token(app, "mgr")
    mgr = Browser(app)
    mgr.login("mgr")
    assert _api_status(app, token) == 200 and mgr.get("/").status_code == 200
    password = PASSWORD
    if change == "reset":
        password = "brand new 1234"
        assert admin.post(f"/users/{uid}/password", {"password": password, "repeat": password}).status_code == 302
    elif change == "deactivate-reactivate":
        assert admin.post(f"/users/{uid}/active", {"active": "0"}).status_code == 302
        assert admin.post(f"/users/{uid}/active", {"active": "1"}).status_code == 302
    else:
        assert admin.post(f"/users/{uid}", {"role": "coordinator", "display_name": "mgr"}).status_code == 302
    assert _api_status(app, token) == 401  # the old token is dead ...
    assert mgr.get("/").status_code == 302  # ... and so is the old web session
    assert _api_status(app, _token(app, "mgr", password)) == 200  # a new sign-in works
    assert Browser(app).login("mgr", password).status_code == 302


def test_own_password_change_keeps_this_browser_only(app: Any, make_user: Callable[..., Any]) -> None:
    make_user("mgr", "manager")
    token = _token(app, "mgr")
    here, there = Browser(app), Browser(app)
    here.login("mgr")
    there.login("mgr")
    here.get("/account/password")
    old_copy = _replay(app, here)
    resp = here.post("/account/password", {"current": PASSWORD, "new": "new secret 1", "repeat": "new secret 1"})
    assert resp.status_code == 302
    assert here.get("/").status_code == 200  # a new session for this browser
    assert old_copy.get("/").status_code == 302  # the cookie it had before is dead
    assert there.get("/").status_code == 302
    assert _api_status(app, token) == 401


def test_deactivation_ends_token_urls_for_good(app: Any, rt: Any, make_user: Callable[..., Any]) -> None:
    admin = _admin(app, make_user)
    make_user("tashi", "collector", ["540102"])
    uid = _id(rt, "tashi")
    with rt.db.write() as s:
        old = user_service.issue_token(s, s.get(User, uid), rt.config["SECRET_KEY"]).token
    url = f"/v1/key/{old}/projects/1/formList"
    assert app.test_client().get(url, headers=OR).status_code == 200
    admin.post(f"/users/{uid}/active", {"active": "0"})
    assert app.test_client().get(url, headers=OR).status_code == 403
    admin.post(f"/users/{uid}/active", {"active": "1"})
    # The old QR code may be on a lost phone: it stays dead; the coordinator prints a new one.
    assert app.test_client().get(url, headers=OR).status_code == 403
    with rt.db.write() as s:
        new = user_service.issue_token(s, s.get(User, uid), rt.config["SECRET_KEY"]).token
    assert new != old
    assert app.test_client().get(f"/v1/key/{new}/projects/1/formList", headers=OR).status_code == 200


def test_role_change_ends_token_urls_and_password_reset_keeps_them(app: Any, rt: Any,
                                                                    make_user: Callable[..., Any]) -> None:
    admin = _admin(app, make_user)
    make_user("tashi", "collector", ["540102"])
    uid = _id(rt, "tashi")
    with rt.db.write() as s:
        token = user_service.issue_token(s, s.get(User, uid), rt.config["SECRET_KEY"]).token
    url = f"/v1/key/{token}/projects/1/formList"
    admin.post(f"/users/{uid}/password", {"password": "another one 1", "repeat": "another one 1"})
    assert app.test_client().get(url, headers=OR).status_code == 200  # not derived from the password
    admin.post(f"/users/{uid}", {"role": "manager", "display_name": "tashi"})
    assert app.test_client().get(url, headers=OR).status_code == 403


def test_ending_an_api_session_needs_its_owner_or_an_admin(app: Any, make_user: Callable[..., Any]) -> None:
    make_user("admin1", "admin")
    make_user("mgr", "manager", ["540102"])
    make_user("coord", "coordinator", ["5401"])
    victim, other, admin = _token(app, "mgr"), _token(app, "coord"), _token(app, "admin1")

    def end(token: str, by: str) -> int:
        return int(app.test_client().delete(f"/v1/sessions/{token}",
                                            headers={"Authorization": f"Bearer {by}"}).status_code)

    assert end(victim, other) == 404  # someone else's token: answered as unknown, and it still works
    assert _api_status(app, victim) == 200
    assert end(other, other) == 200  # signing out
    assert _api_status(app, other) == 401
    assert end(victim, admin) == 200  # an administrator may end any session
    assert _api_status(app, victim) == 401
    assert end(victim, admin) == 404
