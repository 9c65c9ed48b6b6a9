"""Sign-in throttling (issue 8, item 7): a storm of wrong passwords on any channel neither succeeds
nor locks the rightful user out of their own device."""
from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.models import AuditEvent, LoginFailure, SigninKnownAddress, utcnow
from app.services.identity import signin
from tests.app.conftest import PASSWORD
from tests.app.web_helpers import Browser
from tests.support.digest_client import authorization, parse_challenge

ATTACKER = "203.0.113.9"
HOME = "198.51.100.7"
FORM_LIST = "/v1/projects/1/formList"
OR = {"X-OpenRosa-Version": "1.0"}


def _client(app: Any, ip: str) -> Any:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Web:
    def __init__(self, app: Any, ip: str) -> None:
        self.browser = Browser(app)
        self.browser.client.environ_base["REMOTE_ADDR"] = ip

    def attempt(self, user: str, password: str) -> Any:
        return self.browser.login(user, password)


class ApiSession:
    def __init__(self, app: Any, ip: str) -> None:
        self.client = _client(app, ip)

    def attempt(self, user: str, password: str) -> Any:
        return self.client.post("/v1/sessions", json={"email": user, "password": password})


class ApiBasic:
    def __init__(self, app: Any, ip: str) -> None:
        self.client = _client(app, ip)

    def attempt(self, user: str, password: str) -> Any:
        return self.client.get("/v1/projects", headers=_basic(user, password), base_url="https://localhost")


class OpenRosaBasic:
    def __init__(self, app: Any, ip: str) -> None:
        self.client = _client(app, ip)

    def attempt(self, user: str, password: str) -> Any:
        return self.client.get(FORM_LIST, headers={**OR, **_basic(user, password)}, base_url="https://localhost")


class Digest:
    """One challenge, then answers computed with the given password (as a scripted attacker would)."""

    def __init__(self, app: Any, ip: str) -> None:
        self.client = _client(app, ip)
        resp = self.client.get(FORM_LIST, headers=OR)
        self.chal = parse_challenge(resp.headers["WWW-Authenticate"])
        self.nc = 0

    def attempt(self, user: str, password: str) -> Any:
        self.nc += 1
        auth = authorization(user, password, "GET", FORM_LIST, self.chal, self.nc)
        return self.client.get(FORM_LIST, headers={**OR, "Authorization": auth})


CHANNELS = {"web": (Web, "manager"), "api-session": (ApiSession, "manager"), "api-basic": (ApiBasic, "manager"),
            "openrosa-digest": (Digest, "collector"), "openrosa-basic": (OpenRosaBasic, "collector")}


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_forty_wrong_then_right_is_refused_and_the_owner_still_signs_in_elsewhere(
        app: Any, make_user: Callable[..., Any], channel: str) -> None:
    kind, role = CHANNELS[channel]
    make_user("dolma", role, ["540102"])
    attacker = kind(app, ATTACKER)
    statuses = [attacker.attempt("dolma", f"guess {i}").status_code for i in range(40)]
    assert statuses[:5] == [401] * 5  # five wrong passwords are checked ...
    assert set(statuses[5:]) == {429}  # ... then none is, for a while
    resp = attacker.attempt("dolma", PASSWORD)  # the right one, from the attacker's address
    assert resp.status_code == 429
    assert 0 < int(resp.headers["Retry-After"]) <= 60
    if channel.startswith("openrosa"):
        body = resp.get_data(as_text=True)
        assert "<OpenRosaResponse" in body and "请等待 1 分钟" in body and "Wait 1 minute" in body
    elif channel.startswith("api"):
        problem = resp.get_json()
        assert problem["code"] == 429.1 and "Wait 1 minute" in problem["message"]
        assert problem["details"]["retryAfter"] == int(resp.headers["Retry-After"])
    else:
        assert "请等待 1 分钟后再试" in resp.get_data(as_text=True)
    # The rightful user, on their own phone or computer, is not locked out.
    owner = kind(app, HOME)
    assert owner.attempt("dolma", PASSWORD).status_code in (200, 302)


def test_success_audit_and_waits_that_grow(app: Any, rt: Any, make_user: Callable[..., Any]) -> None:
    make_user("pema", "manager")
    client = ApiSession(app, ATTACKER)
    for _ in range(5):
        assert client.attempt("pema", "wrong").status_code == 401
    first = int(client.attempt("pema", PASSWORD).headers["Retry-After"])
    assert 50 <= first <= 60
    _age_failures(rt, minutes=2)  # the minute has passed: one password is checked again
    assert client.attempt("pema", "wrong again").status_code == 401
    second = int(client.attempt("pema", PASSWORD).headers["Retry-After"])
    assert 110 <= second <= 120  # and the next wait is twice as long
    _age_failures(rt, minutes=3)
    assert client.attempt("pema", PASSWORD).status_code == 200  # the right password, after waiting
    assert client.attempt("pema", "wrong").status_code == 401  # the pair's count started again
    with rt.db.session() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [e.details.get("channel") for e in events if e.action == "login.ok"] == ["api"]
    assert sum(e.action == "login.failed" for e in events) == 7


def _age_failures(rt: Any, minutes: int) -> None:
    with rt.db.write() as s:
        for row in s.scalars(select(LoginFailure)):
            row.at = row.at - timedelta(minutes=minutes)


def test_waits_are_capped(rt: Any, make_user: Callable[..., Any]) -> None:
    make_user("pema", "manager")
    with rt.db.write() as s:
        s.add_all([LoginFailure(username="pema", ip=ATTACKER, at=utcnow()) for _ in range(30)])
    with pytest.raises(signin.Throttled) as exc:
        signin.verify(rt.db, "pema", ATTACKER, lambda u: True, channel="api")
    assert 14 * 60 < exc.value.retry_after <= 15 * 60


def test_storm_from_many_addresses_spares_addresses_the_account_knows(rt: Any,
                                                                       make_user: Callable[..., Any]) -> None:
    make_user("pema", "manager")

    def attempt(ip: str, ok: bool) -> str:
        try:
            signin.verify(rt.db, "pema", ip, lambda u: ok, channel="api")
        except signin.Throttled:
            return "wait"
        except signin.WrongPassword:
            return "wrong"
        return "in"

    assert attempt(HOME, True) == "in"  # the owner signed in from home before the storm
    outcomes = [attempt(f"10.9.{i // 200}.{i % 200}", False) for i in range(signin.ACCOUNT_FREE + 10)]
    assert outcomes[:signin.ACCOUNT_FREE] == ["wrong"] * signin.ACCOUNT_FREE
    assert set(outcomes[signin.ACCOUNT_FREE:]) == {"wait"}  # the account is held for unknown addresses
    assert attempt("10.99.0.1", True) == "wait"  # even with the right password
    assert attempt(HOME, True) == "in"  # but the owner's known address still signs in


def test_one_address_trying_many_accounts_waits_except_where_known(rt: Any, make_user: Callable[..., Any]) -> None:
    make_user("pema", "manager")
    make_user("dawa", "manager")
    signin.verify(rt.db, "dawa", ATTACKER, lambda u: True, channel="api")  # dawa works at this address
    for i in range(signin.ADDRESS_FREE):
        with pytest.raises(signin.WrongPassword):
            signin.verify(rt.db, f"user{i}", ATTACKER, lambda u: True, channel="api")  # names that do not exist
    with pytest.raises(signin.Throttled):
        signin.verify(rt.db, "pema", ATTACKER, lambda u: True, channel="api")
    assert signin.verify(rt.db, "dawa", ATTACKER, lambda u: True, channel="api").username == "dawa"
    assert signin.verify(rt.db, "pema", HOME, lambda u: True, channel="api").username == "pema"


def test_change_password_checks_the_current_one_through_the_throttle(app: Any, make_user: Callable[..., Any]) -> None:
    make_user("mgr", "manager")
    b = Web(app, HOME).browser
    b.login("mgr")
    b.get("/account/password")
    for _ in range(5):
        resp = b.post("/account/password", {"current": "guess", "new": "new secret 1", "repeat": "new secret 1"})
        assert resp.status_code == 400
    resp = b.post("/account/password", {"current": PASSWORD, "new": "new secret 1", "repeat": "new secret 1"})
    assert resp.status_code == 429 and resp.headers["Retry-After"]
    assert Browser(app).login("mgr", "new secret 1").status_code == 401  # not changed


def test_no_throttle_state_for_good_phones(app: Any, rt: Any, make_user: Callable[..., Any]) -> None:
    """A phone's every request checks its Digest answer; a right one writes nothing after the first."""
    from tests.support.digest_client import DigestClient

    make_user("tashi", "collector", ["540102"])
    phone = DigestClient(_client(app, HOME), "tashi", PASSWORD)
    assert phone.get(FORM_LIST).status_code == 200
    with rt.db.session() as s:
        before = s.scalars(select(SigninKnownAddress)).one().last_ok_at
    for _ in range(3):
        assert phone.get(FORM_LIST).status_code == 200
    with rt.db.session() as s:
        assert s.scalars(select(SigninKnownAddress)).one().last_ok_at == before
        assert s.scalar(select(LoginFailure.id)) is None


def test_unknown_user_names_are_throttled_like_real_ones(app: Any) -> None:
    client = ApiSession(app, ATTACKER)
    statuses = [client.attempt("nobody", "x").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


def test_failures_older_than_the_window_are_forgotten(rt: Any, make_user: Callable[..., Any]) -> None:
    make_user("pema", "manager")
    with rt.db.write() as s:
        old = utcnow() - signin.WINDOW - timedelta(minutes=1)
        s.add_all([LoginFailure(username="pema", ip=ATTACKER, at=old) for _ in range(10)])
    assert signin.verify(rt.db, "pema", ATTACKER, lambda u: True, channel="api").username == "pema"


def test_a_browser_that_signed_in_before_is_spared_the_account_wide_wait(app: Any, rt: Any,
                                                                         make_user: Callable[..., Any]) -> None:
    make_user("mgr", "manager")
    laptop = Web(app, HOME)
    assert laptop.attempt("mgr", PASSWORD).status_code == 302  # gets the signed device cookie
    laptop.browser.post("/logout")
    with rt.db.write() as s:  # a storm from many addresses passed the account-wide ceiling
        s.add_all([LoginFailure(username="mgr", ip=f"10.8.0.{i}", at=utcnow())
                   for i in range(signin.ACCOUNT_FREE + 1)])
    laptop.browser.client.environ_base["REMOTE_ADDR"] = "192.0.2.44"  # the laptop is on another network now
    assert laptop.attempt("mgr", PASSWORD).status_code == 302
    stranger = Web(app, "192.0.2.45")
    assert stranger.attempt("mgr", PASSWORD).status_code == 429
    forged = Web(app, "192.0.2.46")  # a device cookie for another account, or a forged one, is no help
    cookie = laptop.browser.client.get_cookie("carefile_device")
    assert cookie is not None
    forged.browser.client.set_cookie("carefile_device", cookie.value[:-2] + "xx")
    assert forged.attempt("mgr", PASSWORD).status_code == 429
