"""Administration pages: users (add, edit, deactivate, reset password) and the audit log."""
from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.models import AuditEvent, User
from app.services import audit
from tests.app.conftest import PASSWORD
from tests.app.web_helpers import Browser
from tests.support.digest_client import DigestClient

ADMIN_PAGES = ["/users", "/users/new", "/audit"]


@pytest.fixture
def admin(app: Any, make_user: Any) -> Browser:
    make_user("root", "admin")
    b = Browser(app)
    assert b.login("root").status_code == 302
    b.get("/")  # signing in starts a new session: fetch its CSRF token
    return b


def user_row(rt: Any, name: str) -> User:
    with rt.db.session() as s:
        user = s.scalars(select(User).where(User.username == name)).one()
        s.expunge(user)
        return user


def events(rt: Any, action: str) -> list[AuditEvent]:
    with rt.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


@pytest.mark.parametrize("role", ["manager", "coordinator"])
def test_only_admins_open_users_and_audit(app: Any, make_user: Any, role: str) -> None:
    make_user("someone", role, ["540102"])
    b = Browser(app)
    b.login("someone")
    b.get("/")
    for url in ADMIN_PAGES:
        assert b.get(url).status_code == 403, url
    make_user("victim", "collector")
    victim = user_row(app.extensions["carefile"], "victim")
    for url, data in [("/users/new", {"username": "x1", "role": "admin", "password": "p" * 10, "repeat": "p" * 10}),
                      (f"/users/{victim.id}", {"role": "admin"}),
                      (f"/users/{victim.id}/active", {"active": "0"}),
                      (f"/users/{victim.id}/password", {"password": "p" * 10, "repeat": "p" * 10})]:
        assert b.post(url, data).status_code == 403, url
    assert user_row(app.extensions["carefile"], "victim").role == "collector"
    home = b.get("/").get_data(as_text=True)
    assert 'href="/users"' not in home and 'href="/audit"' not in home


def test_signed_out_is_sent_to_sign_in(app: Any) -> None:
    client = app.test_client()
    for url in ADMIN_PAGES:
        resp = client.get(url)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next="), url


def test_admin_sees_both_pages_in_the_navigation(admin: Browser) -> None:
    home = admin.get("/").get_data(as_text=True)
    assert 'href="/users"' in home and 'href="/audit"' in home
    assert home.index('href="/users"') < home.index('href="/audit"')


def test_posts_without_csrf_are_refused(admin: Browser, rt: Any) -> None:
    resp = admin.client.post("/users/new", data={"username": "sneaky", "role": "admin", "password": "p" * 10,
                                                 "repeat": "p" * 10})
    assert resp.status_code == 400
    resp = admin.client.post("/users/new", data={"csrf_token": "forged", "username": "sneaky", "role": "admin",
                                                 "password": "p" * 10, "repeat": "p" * 10})
    assert resp.status_code == 400
    with rt.db.session() as s:
        assert s.scalar(select(User).where(User.username == "sneaky")) is None


def test_add_user_with_regions_is_audited(admin: Browser, rt: Any) -> None:
    admin.post("/language", {"lang": "en", "next": "/"})
    resp = admin.post("/users/new", {"username": "dolma", "display_name": "Dolma Tsering", "role": "manager",
                                     "regions": "540102, 540121", "password": "a good password",
                                     "repeat": "a good password"})
    assert resp.status_code == 302
    user = user_row(rt, "dolma")
    assert (user.role, user.region_codes, user.display_name) == ("manager", ["540102", "540121"], "Dolma Tsering")
    page = admin.get("/users").get_data(as_text=True)
    assert "dolma" in page and "540102, 540121" in page and "Manager" in page
    managers = admin.get("/users?role=manager").get_data(as_text=True)
    admins = admin.get("/users?role=admin").get_data(as_text=True)
    assert "<strong>dolma</strong>" in managers and "<strong>root</strong>" not in managers
    assert "<strong>root</strong>" in admins and "<strong>dolma</strong>" not in admins
    [event] = events(rt, "user.create")
    assert (event.username, event.target) == ("root", "user:dolma")
    assert event.details == {"role": "manager", "regions": ["540102", "540121"], "display_name": "Dolma Tsering"}
    # the new user signs in with that password
    assert Browser(admin.client.application).login("dolma", "a good password").status_code == 302


@pytest.mark.parametrize("form, message", [
    ({"username": "has space", "role": "manager"}, "cannot be used as a user name"),
    ({"username": "ok", "role": "boss"}, "Unknown role"),
    ({"username": "ok", "role": "manager", "regions": "54x"}, "is not a region code"),
    ({"username": "ok", "role": "manager", "password": "short", "repeat": "short"}, "too short"),
    ({"username": "ok", "role": "manager", "repeat": "different one"}, "The two passwords differ"),
    ({"username": "root", "role": "manager"}, "exists already"),
])
def test_add_user_errors_are_shown_on_the_form(admin: Browser, rt: Any, form: dict[str, str], message: str) -> None:
    admin.post("/language", {"lang": "en", "next": "/"})
    data = {"password": "a good password", "repeat": "a good password", **form}
    resp = admin.post("/users/new", data)
    assert resp.status_code in (400, 409)
    page = resp.get_data(as_text=True)
    assert message in page and 'role="alert"' in page
    assert events(rt, "user.create") == []


def test_edit_role_regions_and_name(admin: Browser, rt: Any, make_user: Any) -> None:
    make_user("pema", "collector", ["540102"])
    pema = user_row(rt, "pema")
    resp = admin.post(f"/users/{pema.id}", {"role": "coordinator", "display_name": "Pema Lhamo",
                                            "regions": "540102 540121100"})
    assert resp.status_code == 302
    pema = user_row(rt, "pema")
    assert (pema.role, pema.display_name, pema.region_codes) == ("coordinator", "Pema Lhamo",
                                                                 ["540102", "540121100"])
    [event] = events(rt, "user.update")
    assert event.target == "user:pema"
    assert event.details == {"role": ["collector", "coordinator"], "display_name": ["pema", "Pema Lhamo"],
                             "regions": ["540102", "540102, 540121100"]}
    # saving again without changes records nothing
    admin.post(f"/users/{pema.id}", {"role": "coordinator", "display_name": "Pema Lhamo",
                                     "regions": "540121100 540102"})
    assert len(events(rt, "user.update")) == 1
    # removing every region
    admin.post(f"/users/{pema.id}", {"role": "coordinator", "display_name": "Pema Lhamo", "regions": ""})
    assert user_row(rt, "pema").region_codes == []
    # a bad region code is refused and nothing changes
    resp = admin.post(f"/users/{pema.id}", {"role": "manager", "display_name": "Pema Lhamo", "regions": "12345"})
    assert resp.status_code == 400 and "12345" in resp.get_data(as_text=True)
    assert user_row(rt, "pema").role == "coordinator"


def test_admin_cannot_demote_or_deactivate_self(admin: Browser, rt: Any) -> None:
    me = user_row(rt, "root")
    assert admin.post(f"/users/{me.id}", {"role": "manager", "display_name": "root"}).status_code == 400
    assert admin.post(f"/users/{me.id}/active", {"active": "0"}).status_code == 400
    me = user_row(rt, "root")
    assert me.role == "admin" and me.active
    assert admin.get("/users").status_code == 200


def test_unknown_user_is_404(admin: Browser) -> None:
    assert admin.get("/users/9999").status_code == 404
    assert admin.post("/users/9999/active", {"active": "0"}).status_code == 404


def test_deactivated_user_cannot_sign_in_nor_use_digest(app: Any, admin: Browser, rt: Any, make_user: Any) -> None:
    make_user("mgr", "manager", ["540102"])
    make_user("tashi", "collector", ["540102"])
    mgr_browser = Browser(app)
    assert mgr_browser.login("mgr").status_code == 302
    phone = DigestClient(app.test_client(), "tashi", PASSWORD)
    assert phone.get("/v1/projects/1/formList").status_code == 200

    for name in ("mgr", "tashi"):
        resp = admin.post(f"/users/{user_row(rt, name).id}/active", {"active": "0"})
        assert resp.status_code == 302
        assert not user_row(rt, name).active

    assert mgr_browser.get("/").status_code == 302  # the open session ends too
    assert Browser(app).login("mgr").status_code == 401
    assert DigestClient(app.test_client(), "tashi", PASSWORD).get("/v1/projects/1/formList").status_code == 401
    assert phone.get("/v1/projects/1/formList").status_code == 401
    page = admin.get("/users").get_data(as_text=True)
    assert page.count('<span class="badge red">已停用</span>') == 2
    assert [e.details for e in events(rt, "user.update")] == [{"active": [True, False]}] * 2

    admin.post(f"/users/{user_row(rt, 'tashi').id}/active", {"active": "1"})
    assert DigestClient(app.test_client(), "tashi", PASSWORD).get("/v1/projects/1/formList").status_code == 200
    assert events(rt, "user.update")[-1].details == {"active": [False, True]}


def test_reset_password_signs_out_and_lifts_throttling(app: Any, admin: Browser, rt: Any, make_user: Any) -> None:
    make_user("mgr", "manager")
    mgr_id = user_row(rt, "mgr").id
    session = Browser(app)
    session.login("mgr")
    for _ in range(5):
        Browser(app).login("mgr", "wrong guess")
    assert Browser(app).login("mgr").status_code == 429

    resp = admin.post(f"/users/{mgr_id}/password", {"password": "new one 1234", "repeat": "mismatch 1234"})
    assert resp.status_code == 400
    resp = admin.post(f"/users/{mgr_id}/password", {"password": "new one 1234", "repeat": "new one 1234"})
    assert resp.status_code == 302
    assert session.get("/").status_code == 302
    assert Browser(app).login("mgr", PASSWORD).status_code == 401
    assert Browser(app).login("mgr", "new one 1234").status_code == 302
    [event] = events(rt, "user.update")
    assert event.details == {"password": "reset"}
    assert "new one" not in str(event.details)
    page = admin.get("/audit?target=user:mgr").get_data(as_text=True)
    assert "已重置" in page


def _seed_audit(rt: Any) -> None:
    base = datetime(2024, 5, 31, 15, 30, tzinfo=UTC)  # 23:30 on 31 May in China
    with rt.db.write() as s:
        for i, (user, action, target) in enumerate([
            ("dolma", "login.ok", ""),
            ("dolma", "child.view", "child:aaaa"),
            ("pema", "child.view", "child:bbbb"),
            ("pema", "form.publish", "form:household"),
            ("root", "user.update", "user:pema"),
        ]):
            event = audit.record(s, None, action, target=target, ip="10.0.0.7", username=user,
                                 **({"role": ["manager", "coordinator"]} if action == "user.update" else {}))
            event.at = base + timedelta(hours=i)  # 23:30 31 May, 00:30 1 June, ... (China time)


ROW = re.compile(r'<tr data-id="\d+">\s*<td class="when"><time[^>]*>[^<]+</time></td>\s*<td class="who">([^<]+)</td>')


def shown(page: str) -> list[str]:
    """The "who" column of the audit rows on the page, top to bottom."""
    return ROW.findall(page)


def test_audit_log_filters(admin: Browser, rt: Any) -> None:
    _seed_audit(rt)
    page = admin.get("/audit").get_data(as_text=True)
    assert "Asia/Shanghai" in page
    assert "2024-05-31 23:30:00" in page and "2024-06-01 03:30:00" in page  # UTC+8
    assert "10.0.0.7" in page
    assert "协调员" in page and "→" in page  # details read "Manager → Coordinator"

    def whos(query: str) -> list[str]:
        resp = admin.get("/audit?" + query)
        assert resp.status_code == 200
        return shown(resp.get_data(as_text=True))

    assert whos("action=child") == ["pema", "dolma"]
    assert whos("action=child.view&user=dolma") == ["dolma"]
    assert whos("target=bbbb") == ["pema"]
    assert whos("action=user.") == ["root"]
    # dates are China dates: 31 May holds only the 23:30 sign-in (15:30 UTC)
    assert whos("action=login.ok&to=2024-05-31") == ["dolma"]
    assert whos("from=2024-06-01&to=2024-06-01&action=child") == ["pema", "dolma"]
    assert whos("from=2024-05-31&to=2024-05-31&user=dolma") == ["dolma"]
    assert whos("from=2024-06-02") == ["root"]  # only the sign-in of today
    for bad in ("from=yesterday", "to=2024-02-30", "from=0001-01-01"):
        resp = admin.get("/audit?" + bad)
        assert resp.status_code == 400 and "YYYY-MM-DD" in resp.get_data(as_text=True), bad
    assert admin.get("/audit?before_id=99999999999999999999999").status_code == 200


def test_audit_log_pages_by_id(admin: Browser, rt: Any, monkeypatch: Any) -> None:
    import app.web.audit as audit_page

    monkeypatch.setattr(audit_page, "PAGE_SIZE", 2)
    _seed_audit(rt)
    page = admin.get("/audit?action=child").get_data(as_text=True)
    assert shown(page) == ["pema", "dolma"] and 'rel="next"' not in page
    page = admin.get("/audit?user=pema").get_data(as_text=True)
    assert len(shown(page)) == 2 and 'rel="next"' not in page
    seen: list[str] = []
    url = "/audit"
    for _ in range(10):
        page = admin.get(url).get_data(as_text=True)
        seen += shown(page)
        m = re.search(r'<a href="([^"]+)" rel="next"', page)
        if not m:
            break
        url = html.unescape(m.group(1))
        assert "before_id=" in url
    # the seeded five plus root's own sign-in, newest first, each once
    assert seen == ["root", "pema", "pema", "dolma", "dolma", "root"]
