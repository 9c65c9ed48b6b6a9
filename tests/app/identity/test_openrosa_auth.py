"""Who may talk to the OpenRosa endpoints: HTTP Digest as ODK Collect speaks it, Basic only over
HTTPS, collector token URLs, and the X-OpenRosa-Version header (docs/odk-protocol.md, *OpenRosa basics*, *Authentication*)."""
from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import pytest

from app.openrosa import digest
from tests.app.conftest import PASSWORD
from tests.support.digest_client import DigestClient, authorization, parse_challenge
from tests.support.sample_forms import household_xml

FORM_LIST = "/v1/projects/1/formList"
OR = {"X-OpenRosa-Version": "1.0"}


def _challenge(client: Any, uri: str = FORM_LIST) -> tuple[Any, dict[str, str]]:
    resp = client.get(uri, headers=OR)
    assert resp.status_code == 401
    digest_headers = [h for h in resp.headers.getlist("WWW-Authenticate") if h.startswith("Digest ")]
    assert len(digest_headers) == 1, resp.headers
    return resp, parse_challenge(digest_headers[0])


def _digest_get(client: Any, chal: dict[str, str], nc: int, user: str = "tashi", password: str = PASSWORD,
                uri: str = FORM_LIST, cnonce: str = "0a4f113b0a4f113b") -> Any:
    auth = authorization(user, password, "GET", uri, chal, nc, cnonce)
    return client.get(uri, headers={**OR, "Authorization": auth})


def _basic(user: str = "tashi", password: str = PASSWORD) -> dict[str, str]:
    return {**OR, "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _stale(resp: Any) -> bool:
    chal = next(h for h in resp.headers.getlist("WWW-Authenticate") if h.startswith("Digest "))
    return parse_challenge(chal).get("stale", "").lower() == "true"


# --- the Digest computation ------------------------------------------------------------------


def test_rfc2617_worked_example() -> None:
    creds = digest.parse({
        "username": "Mufasa", "realm": "testrealm@host.com", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "uri": "/dir/index.html", "qop": "auth", "nc": "00000001", "cnonce": "0a4f113b",
        "response": "6629fae49393a05397450978507c4ef1", "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
    })
    assert creds is not None
    ha1 = digest.md5_hex("Mufasa:testrealm@host.com:Circle Of Life")
    assert digest.expected_response(creds, ha1, "GET") == "6629fae49393a05397450978507c4ef1"
    assert digest.response_ok(creds, ha1, "GET")
    assert not digest.response_ok(creds, ha1, "POST")
    assert not digest.response_ok(creds, digest.md5_hex("Mufasa:testrealm@host.com:Circle of life"), "GET")


def test_nonce_is_checked_against_the_secret_and_its_age() -> None:
    nonce = digest.make_nonce("s1", now=1_000_000)
    age = digest.nonce_age("s1", nonce, now=1_000_030)
    assert age is not None and 29 <= age <= 31
    assert digest.nonce_age("s2", nonce) is None
    assert digest.nonce_age("s1", nonce.replace(".", "x", 1)) is None
    assert digest.nonce_age("s1", "dcd98b7102dd2f0e8b11d0f600bfb0c093") is None


# --- the challenge ---------------------------------------------------------------------------


def test_challenge_offers_md5_digest_with_qop_auth_and_no_basic_over_http(app: Any, collector: Any) -> None:
    resp, chal = _challenge(app.test_client())
    assert b"OpenRosaResponse" in resp.data
    assert chal["realm"] == "CareFile" and chal["qop"] == "auth" and chal["algorithm"] == "MD5"
    assert chal["nonce"] and chal.get("charset", "").upper() == "UTF-8"
    assert "stale" not in chal
    assert not any(h.startswith("Basic") for h in resp.headers.getlist("WWW-Authenticate"))


def test_good_credentials_are_accepted_and_the_nonce_reused(app: Any, collect: DigestClient) -> None:
    first = collect.get(FORM_LIST + "?deviceID=collect:abcdefgh12345678")
    assert first.status_code == 200
    nonce = collect.chal["nonce"] if collect.chal else None
    # Collect re-sends the cached nonce pre-emptively with nc+1: no new challenge needed
    second = collect.get(FORM_LIST + "?deviceID=collect:abcdefgh12345678")
    assert second.status_code == 200
    assert collect.chal is not None and collect.chal["nonce"] == nonce and collect.nc == 2


def test_wrong_password_and_unknown_user_are_401(app: Any, collector: Any) -> None:
    client = app.test_client()
    _, chal = _challenge(client)
    resp = _digest_get(client, chal, 1, password="wrong horse")
    assert resp.status_code == 401 and not _stale(resp)
    assert b"password is wrong" in resp.data
    _, chal = _challenge(client)
    resp = _digest_get(client, chal, 1, user="nobody")
    assert resp.status_code == 401 and not _stale(resp)
    # the right password still works afterwards
    assert _digest_get(client, chal, 2).status_code == 200


def test_expired_nonce_gets_a_stale_challenge(app: Any, rt: Any, collector: Any) -> None:
    client = app.test_client()
    old = digest.make_nonce(rt.config["SECRET_KEY"], now=time.time() - rt.config["DIGEST_NONCE_LIFETIME"] - 60)
    resp = _digest_get(client, {"realm": "CareFile", "nonce": old}, 1)
    assert resp.status_code == 401
    assert _stale(resp)  # Collect retries silently with the new nonce, no login dialog
    fresh = parse_challenge(resp.headers["WWW-Authenticate"])
    assert fresh["nonce"] != old
    assert _digest_get(client, fresh, 1).status_code == 200


def test_replayed_nonce_count_gets_a_stale_challenge(app: Any, collector: Any) -> None:
    client = app.test_client()
    _, chal = _challenge(client)
    assert _digest_get(client, chal, 1).status_code == 200
    replay = _digest_get(client, chal, 1)
    assert replay.status_code == 401 and _stale(replay)
    assert _digest_get(client, chal, 2).status_code == 200
    assert _digest_get(client, chal, 2).status_code == 401


def test_nonce_from_another_secret_is_refused(app: Any, collector: Any) -> None:
    forged = digest.make_nonce("some other secret")
    resp = _digest_get(app.test_client(), {"realm": "CareFile", "nonce": forged}, 1)
    assert resp.status_code == 401 and not _stale(resp)


def test_wrong_realm_or_uri_is_refused(app: Any, collector: Any) -> None:
    client = app.test_client()
    _, chal = _challenge(client)
    assert _digest_get(client, {**chal, "realm": "Other"}, 1).status_code == 401
    # a response computed for another address cannot be replayed here
    auth = authorization("tashi", PASSWORD, "GET", "/v1/projects/1/forms/x.xml", chal, 2)
    assert client.get(FORM_LIST, headers={**OR, "Authorization": auth}).status_code == 401


def test_nonce_works_across_workers_sharing_secret_and_database(app: Any, app_config: dict[str, Any],
                                                                collector: Any) -> None:
    from app import create_app

    other = create_app(app_config)  # another gunicorn worker, or the server after a restart
    try:
        _, chal = _challenge(app.test_client())
        assert _digest_get(other.test_client(), chal, 1).status_code == 200
        assert _digest_get(app.test_client(), chal, 2).status_code == 200
        # the nonce count is shared: a replay on the other worker is caught too
        replay = _digest_get(other.test_client(), chal, 2)
        assert replay.status_code == 401 and _stale(replay)
    finally:
        other.extensions["carefile"].db.dispose()


def test_non_ascii_password(app: Any, rt: Any) -> None:
    from app.services.identity import users

    password = "扎西德勒 Passwört"
    with rt.db.write() as s:
        users.create_user(s, project_id=1, username="pema", role="collector", password=password,
                          realm=rt.config["DIGEST_REALM"])
    client = DigestClient(app.test_client(), "pema", password)
    assert client.get(FORM_LIST).status_code == 200
    assert DigestClient(app.test_client(), "pema", "扎西德勒 Passwort").get(FORM_LIST).status_code == 401


def test_inactive_user_is_refused(app: Any, rt: Any, collect: DigestClient, collector: Any) -> None:
    from app.models import User
    from app.services.identity import users

    assert collect.get(FORM_LIST).status_code == 200
    with rt.db.write() as s:
        token = users.issue_token(s, s.get(User, collector.id), rt.config["SECRET_KEY"]).token
        s.get(User, collector.id).active = False
    assert collect.get(FORM_LIST).status_code == 401
    assert DigestClient(app.test_client(), "tashi", PASSWORD).get(FORM_LIST).status_code == 401
    resp = app.test_client().get(f"/v1/key/{token}/projects/1/formList", headers=OR)
    assert resp.status_code == 403


# --- Basic ------------------------------------------------------------------------------------


def test_basic_over_http_is_refused_with_a_message_about_https(app: Any, collector: Any) -> None:
    resp = app.test_client().get(FORM_LIST, headers=_basic())
    assert resp.status_code == 401
    assert b"HTTPS" in resp.data
    assert not any(h.startswith("Basic") for h in resp.headers.getlist("WWW-Authenticate"))
    # a forwarded-proto header from the client is not trusted without TRUST_PROXY
    resp = app.test_client().get(FORM_LIST, headers={**_basic(), "X-Forwarded-Proto": "https"})
    assert resp.status_code == 401


def test_basic_over_https_is_accepted_and_offered(app: Any, collector: Any) -> None:
    client = app.test_client()
    assert client.get(FORM_LIST, headers=_basic(), base_url="https://localhost").status_code == 200
    resp = client.get(FORM_LIST, headers=_basic(password="wrong horse"), base_url="https://localhost")
    assert resp.status_code == 401
    challenges = resp.headers.getlist("WWW-Authenticate")
    assert challenges[0].startswith("Digest ")  # Collect answers the first one it supports
    assert any(h.startswith("Basic ") for h in challenges)


@pytest.mark.parametrize("setting, headers, status", [
    ({"ALLOW_BASIC_OVER_HTTP": True}, {}, 200),
    ({"TRUST_PROXY": True}, {"X-Forwarded-Proto": "https"}, 200),
    ({"TRUST_PROXY": True}, {"X-Forwarded-Proto": "http"}, 401),
])
def test_basic_allowed_by_settings(app_config: dict[str, Any], app: Any, collector: Any,
                                   setting: dict[str, Any], headers: dict[str, str], status: int) -> None:
    from app import create_app

    other = create_app({**app_config, **setting})
    try:
        resp = other.test_client().get(FORM_LIST, headers={**_basic(), **headers})
        assert resp.status_code == status
        if status == 200:
            bad = other.test_client().get(FORM_LIST, headers={**_basic(password="wrong horse"), **headers})
            assert bad.status_code == 401
    finally:
        other.extensions["carefile"].db.dispose()


# --- token URLs ------------------------------------------------------------------------------


@pytest.fixture
def token_of(rt: Any) -> Callable[[Any], str]:
    from app.models import User
    from app.services.identity import users

    def make(user: Any) -> str:
        with rt.db.write() as s:
            return str(users.issue_token(s, s.get(User, user.id), rt.config["SECRET_KEY"]).token)

    return make


def test_token_url_needs_no_credentials(app: Any, collector: Any, household: Any,
                                        token_of: Callable[[Any], str]) -> None:
    token = token_of(collector)
    client = app.test_client()
    resp = client.get(f"/v1/key/{token}/projects/1/formList?deviceID=collect:abc", headers=OR)
    assert resp.status_code == 200
    assert b"<formID>household</formID>" in resp.data
    resp = client.head(f"/v1/key/{token}/projects/1/submission", headers=OR)
    assert resp.status_code == 204


def test_malformed_token_is_401_and_unknown_token_is_403(app: Any, collector: Any) -> None:
    from app.services.identity import users

    client = app.test_client()
    resp = client.get("/v1/key/short/projects/1/formList", headers=OR)
    assert resp.status_code == 401
    unknown = users.new_token_value()
    resp = client.get(f"/v1/key/{unknown}/projects/1/formList", headers=OR)
    # 403, not 401: Collect must not show a password prompt for a token address
    assert resp.status_code == 403
    assert "WWW-Authenticate" not in resp.headers
    assert b"QR code" in resp.data


def test_revoked_and_renewed_tokens(app: Any, rt: Any, collector: Any, token_of: Callable[[Any], str]) -> None:
    from app.models import User
    from app.services.identity import users

    client = app.test_client()
    old = token_of(collector)
    assert token_of(collector) == old  # issuing again gives the active token
    with rt.db.write() as s:
        new = users.renew_token(s, s.get(User, collector.id), rt.config["SECRET_KEY"]).token
    assert new != old
    assert client.get(f"/v1/key/{old}/projects/1/formList", headers=OR).status_code == 403
    assert client.get(f"/v1/key/{new}/projects/1/formList", headers=OR).status_code == 200
    with rt.db.write() as s:
        assert users.revoke_tokens(s, s.get(User, collector.id)) == 1
    assert client.get(f"/v1/key/{new}/projects/1/formList", headers=OR).status_code == 403


def test_token_of_another_project_is_not_found(app: Any, rt: Any, collector: Any,
                                               token_of: Callable[[Any], str]) -> None:
    token = token_of(collector)
    resp = app.test_client().get(f"/v1/key/{token}/projects/2/formList", headers=OR)
    assert resp.status_code == 404


# --- X-OpenRosa-Version ---------------------------------------------------------------------


def test_openrosa_header_required_on_openrosa_endpoints_only(app: Any, collect: DigestClient,
                                                             household: Any) -> None:
    from tests.app.conftest import submission_body

    no_header = {"X-OpenRosa-Version": ""}
    for uri in (FORM_LIST, "/v1/projects/1/forms/household/manifest"):
        resp = collect.get(uri, headers=no_header)
        assert resp.status_code == 400, uri
        assert b"X-OpenRosa-Version" in resp.data
    assert collect.head("/v1/projects/1/submission", headers=no_header).status_code == 400
    resp = collect.post("/v1/projects/1/submission", data=submission_body(household_xml()),
                        content_type="multipart/form-data", headers=no_header)
    assert resp.status_code == 400
    # the form definition is a plain download (Central does not require the header there)
    resp = collect.get("/v1/projects/1/forms/household.xml", openrosa=False)
    assert resp.status_code == 200 and resp.data.startswith(b"<?xml")
    assert collect.get("/v1/projects/1/forms/household/manifest").status_code == 200


def test_basic_with_latin1_or_utf8_password(app: Any, rt: Any) -> None:
    from app.services.identity import users

    with rt.db.write() as s:
        users.create_user(s, project_id=1, username="pema", role="collector", password="Passwört 1",
                          realm=rt.config["DIGEST_REALM"])
    client = app.test_client()
    for encoding in ("latin-1", "utf-8"):  # OkHttp (Collect) sends ISO-8859-1; RFC 7617 clients UTF-8
        raw = base64.b64encode("pema:Passwört 1".encode(encoding)).decode()
        resp = client.get(FORM_LIST, headers={**OR, "Authorization": f"Basic {raw}"}, base_url="https://localhost")
        assert resp.status_code == 200, encoding
    raw = base64.b64encode("pema:Passwort 1".encode("latin-1")).decode()
    resp = client.get(FORM_LIST, headers={**OR, "Authorization": f"Basic {raw}"}, base_url="https://localhost")
    assert resp.status_code == 401


def test_user_names_collect_cannot_send_are_refused(rt: Any) -> None:
    from app.errors import Problem
    from app.services.identity import users

    for name in ("扎西", "tashi dorje", "tashi\u00e9"):
        with rt.db.write() as s, pytest.raises(Problem) as err:
            users.create_user(s, project_id=1, username=name, role="collector", password=PASSWORD,
                              realm=rt.config["DIGEST_REALM"])
        assert err.value.status == 400 and "display name" in err.value.message
    with rt.db.write() as s:
        user = users.create_user(s, project_id=1, username="tashi.dorje@example.org", role="collector",
                                 password=PASSWORD, realm=rt.config["DIGEST_REALM"], display_name="扎西多吉")
        assert user.display_name == "扎西多吉"
