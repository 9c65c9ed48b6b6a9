"""Guessing secrets (issue 19, Build 7): managed-encryption passphrases are throttled per user and key; the
sign-in limit holds under parallel requests across workers; unknown, deactivated and active accounts cost
the same work."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from app.models import ManagedKey, User
from app.services.identity import signin
from tests.app.forms.test_encrypted_managed import PASS, coordinator, encrypted  # noqa: F401  (fixtures)
from tests.app.web_helpers import Browser

URL = "/v1/projects/1/forms/enc_visit/submissions.csv.zip"


def _bearer(app: Any, name: str) -> dict[str, str]:
    token = app.test_client().post("/v1/sessions", json={"email": name, "password": "correct horse"}).get_json()
    return {"Authorization": f"Bearer {token['token']}"}


def test_passphrase_guesses_are_throttled_per_user_and_key(app: Any, rt: Any, make_user: Any,
                                                           encrypted: dict[str, Any]) -> None:  # noqa: F811
    make_user("boss", "admin")
    make_user("other", "admin")
    client, auth = app.test_client(), _bearer(app, "boss")
    with rt.db.session() as s:
        key_id = s.scalars(select(ManagedKey.id)).one()
    for _ in range(signin.PAIR_FREE):
        assert client.post(URL, json={str(key_id): "a wrong guess"}, headers=auth).status_code == 400
    refused = client.post(URL, json={str(key_id): PASS}, headers=auth)  # even the right one, now
    assert refused.status_code == 429 and refused.get_json()["code"] == 429.1
    assert "passphrase" in refused.get_json()["message"] and refused.headers.get("Retry-After")
    # another user is not held back by these guesses, and the right passphrase works for them
    assert client.post(URL, json={str(key_id): PASS}, headers=_bearer(app, "other")).status_code == 200
    # the website's decrypted export counts against the same user and key
    web = Browser(app)
    assert web.login("boss").status_code == 302
    web.get("/encryption")
    page = web.post("/encryption/export", {"form": "enc_visit", "passphrase": PASS})
    assert page.status_code == 429 and "口令错误次数太多" in page.get_data(as_text=True)


def test_web_passphrase_guesses_are_throttled(coordinator: Browser, encrypted: dict[str, Any]) -> None:  # noqa: F811
    for _ in range(signin.PAIR_FREE):
        assert coordinator.post("/encryption/export", {"form": "enc_visit", "passphrase": "nope"}).status_code == 400
    assert coordinator.post("/encryption/export", {"form": "enc_visit", "passphrase": PASS}).status_code == 429


def test_parallel_wrong_passwords_get_at_most_the_free_checks(rt: Any, make_user: Any) -> None:
    make_user("tashi", "coordinator", ["5401"])
    checked = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def check(_user: User) -> bool:
        with lock:
            checked.append(1)
        return False

    outcomes: list[str] = []

    def attempt() -> None:
        start.wait()
        try:
            signin.verify(rt.db, "tashi", "10.0.0.9", check, channel="api")
        except signin.Throttled:
            outcomes.append("429")
        except signin.WrongPassword:
            outcomes.append("401")

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(checked) <= signin.PAIR_FREE, f"{len(checked)} passwords checked"
    assert sorted(outcomes) == ["401"] * len(checked) + ["429"] * (20 - len(checked))


@pytest.mark.parametrize("who", ["nobody", "gone", "here"])
def test_unknown_deactivated_and_active_accounts_cost_one_check(rt: Any, make_user: Any, who: str) -> None:
    """The work is the same whatever the account (one password check; a stand-in for an unknown name), so
    the answer time does not tell which accounts exist or are deactivated."""
    from app.services.identity import users as user_service

    make_user("here", "coordinator", ["5401"])
    gone = make_user("gone", "coordinator", ["5401"])
    with rt.db.write() as s:
        user_service.set_active(s.get(User, gone.id), False)  # type: ignore[arg-type]
    checks: list[str] = []

    def check(user: User) -> bool:
        checks.append(user.username)
        return False

    with pytest.raises(signin.WrongPassword):
        signin.verify(rt.db, who, "10.0.0.7", check, channel="web")
    assert len(checks) == 1
    assert checks[0] == ("" if who == "nobody" else who)
