"""The submission POST answered in front of Flask (app/lean.py) answers exactly as the Flask view does.

Each case is sent twice on the same server — through the fast path, then with it switched off (through
Flask's view, hooks and error handlers) — with fresh instanceIDs, and the answers must be the same: status,
body, headers (but the request id, which is new each time, and the Digest nonce). A spy checks that the
fast path really answered the first and not the second. Cases: every answer a phone can get."""
from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app import lean
from app.models import Form, Submission, User
from app.services import metrics
from app.services.identity import users as user_service
from app.services.submissions import ingest as submission_service
from tests.app.conftest import PASSWORD
from tests.support.digest_client import DigestClient
from tests.support.sample_forms import household_md, household_xml

OR = {"X-OpenRosa-Version": "1.0"}


def _body(xml: bytes, photo: bytes | None = b"\xff\xd8photo") -> dict[str, Any]:
    data: dict[str, Any] = {"xml_submission_file": (BytesIO(xml), "submission.xml", "text/xml")}
    if photo is not None:
        data["photo.jpg"] = (BytesIO(photo), "photo.jpg", "image/jpeg")
    return data


def _iid() -> str:
    return f"uuid:{uuid.uuid4()}"


@pytest.fixture
def world(app: Any, rt: Any, make_user: Any, publish: Any) -> dict[str, Any]:
    publish(household_md("1"))
    make_user("tashi", "collector", ["540102"])
    make_user("mgr", "manager", ["540102"])
    with rt.db.write() as s:
        tashi = s.scalar(select(User).where(User.username == "tashi"))
        token = user_service.issue_token(s, tashi, rt.config["SECRET_KEY"]).token
    publish(household_md("1").replace("| household |", "| shut |", 1))
    with rt.db.write() as s:
        form = s.scalar(select(Form).where(Form.xml_form_id == "shut"))
        assert form is not None
        form.state = "closed"
    return {"token": token}


def _token_post(client: Any, token: str, xml: bytes, **kw: Any) -> Any:
    headers = kw.pop("headers", OR)
    return client.post(f"/v1/key/{token}/projects/1/submission?deviceID=collect:abc", headers=headers,
                       data=_body(xml, **kw), content_type="multipart/form-data")


def _cases(app: Any, world: dict[str, Any]) -> dict[str, Callable[[], list[Any]]]:
    token = world["token"]

    def created() -> list[Any]:
        return [_token_post(app.test_client(), token, household_xml(_iid()))]

    def duplicate_and_conflict() -> list[Any]:
        iid, client = _iid(), app.test_client()
        return [_token_post(client, token, household_xml(iid)), _token_post(client, token, household_xml(iid)),
                _token_post(client, token, household_xml(iid, name="Other"))]

    def edited() -> list[Any]:
        iid, client = _iid(), app.test_client()
        return [_token_post(client, token, household_xml(iid)),
                _token_post(client, token, household_xml(_iid(), deprecated_id=iid, name="Edited"))]

    def missing_photo() -> list[Any]:
        return [_token_post(app.test_client(), token, household_xml(_iid()), photo=None)]

    def refusals() -> list[Any]:
        client = app.test_client()
        return [
            _token_post(client, token, household_xml(_iid()), headers={}),  # no X-OpenRosa-Version
            _token_post(client, "A" * 64, household_xml(_iid())),  # unknown token
            _token_post(client, "short", household_xml(_iid())),  # not a token
            _token_post(client, "not.a.token", household_xml(_iid())),  # not of the token alphabet: Flask's
            client.post(f"/v1/key/{token}/projects/2/submission", headers=OR, data=_body(household_xml(_iid())),
                        content_type="multipart/form-data"),  # another project
            client.post(f"/v1/key/{token}/projects/1/submission", headers=OR,
                        data={"other": (BytesIO(b"x"), "x.txt")}, content_type="multipart/form-data"),  # no XML
            _token_post(client, token, b"<data id='household'><oops"),  # unreadable XML
            _token_post(client, token, household_xml(_iid(), form_id="nosuch")),  # unknown form
            _token_post(client, token, household_xml(_iid(), form_id="shut")),  # closed form
            _token_post(client, token, household_xml(_iid(), version="9")),  # unknown version
            _token_post(client, token, household_xml(_iid()), photo=b"x" * 200_000),  # too large
            _token_post(client, token, household_xml(_iid(), deprecated_id="uuid:nothing-here")),  # no original
        ]

    def digest() -> list[Any]:
        client = app.test_client()
        plain = client.post("/v1/projects/1/submission", headers=OR, data=_body(household_xml(_iid())),
                            content_type="multipart/form-data")  # 401 with challenges
        wrong = DigestClient(app.test_client(), "tashi", "wrong password").post(
            "/v1/projects/1/submission", data=lambda: _body(household_xml(_iid())), content_type="multipart/form-data")
        good = DigestClient(app.test_client(), "tashi", PASSWORD).post(
            "/v1/projects/1/submission", data=lambda: _body(household_xml(_iid())), content_type="multipart/form-data")
        root = DigestClient(app.test_client(), "tashi", PASSWORD).post(
            "/submission", data=lambda: _body(household_xml(_iid())), content_type="multipart/form-data")
        manager = DigestClient(app.test_client(), "mgr", PASSWORD).post(
            "/v1/projects/1/submission", data=lambda: _body(household_xml(_iid())), content_type="multipart/form-data")
        return [plain, wrong, good, root, manager]

    return {"created": created, "duplicate_and_conflict": duplicate_and_conflict, "edited": edited,
            "missing_photo": missing_photo, "refusals": refusals, "digest": digest}


def _shape(resp: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    assert resp.headers.get("X-Request-Id")
    headers = []
    for name, value in resp.headers.items():
        if name in ("X-Request-Id", "Vary"):
            # Vary: Cookie — Flask's sign-in extension looks at the (empty) cookie session of every request;
            # the fast path has no session. It changes nothing for an answer that is never stored (no-store).
            continue
        if name == "WWW-Authenticate":
            value = re.sub(r'nonce="[^"]*"', 'nonce="…"', value)
        headers.append((name, value))
    return resp.status_code, resp.get_data(), sorted(headers)


@pytest.mark.parametrize("case", ["created", "duplicate_and_conflict", "edited", "missing_photo", "refusals",
                                  "digest"])
def test_fast_path_answers_as_flask(app: Any, world: dict[str, Any], case: str, monkeypatch: Any) -> None:
    app.config["CAREFILE"]["MAX_SUBMISSION_BYTES"] = 100_000
    handled: list[str] = []
    real = lean.LeanSubmissions.handle

    def spy(self: Any, environ: dict[str, Any], *args: Any) -> Any:
        handled.append(environ["PATH_INFO"])
        return real(self, environ, *args)

    monkeypatch.setattr(lean.LeanSubmissions, "handle", spy)
    run = _cases(app, world)[case]
    fast = [_shape(r) for r in run()]
    fast_handled = len(handled)
    monkeypatch.setattr(lean, "ENABLED", False)
    slow = [_shape(r) for r in run()]
    assert len(handled) == fast_handled, "with the fast path off, Flask answers"
    assert fast == slow
    # Every request of the case went the fast way, but the malformed token (Flask's route takes any segment);
    # the four Digest clients each sent two (the challenge, then the answer).
    assert fast_handled == {"refusals": len(fast) - 1, "digest": 1 + 4 * 2}.get(case, len(fast))


def test_fast_path_stores_records_metrics_and_logs(app: Any, rt: Any, world: dict[str, Any],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    rule = "/v1/key/<token>/projects/<int:project_id>/submission"

    def counted() -> tuple[float, float, float]:
        get = metrics.REGISTRY.get_sample_value
        return (get("carefile_http_requests_total", {"route": rule, "method": "POST", "status": "201"}) or 0,
                get("carefile_submissions_received_total", {"status": "201"}) or 0,
                get("carefile_attachment_bytes_received_total") or 0)

    before = counted()
    with caplog.at_level(logging.INFO, logger="carefile.request"):
        resp = _token_post(app.test_client(), world["token"], household_xml(_iid()), photo=b"p" * 1000)
    assert resp.status_code == 201
    after = counted()
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 1, 1000)
    assert any(r.getMessage().startswith(f"POST {rule} 201 ") for r in caplog.records)
    with rt.db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Submission)) == 1


def test_faults_and_errors_answer_as_flask(app: Any, world: dict[str, Any], monkeypatch: Any) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a programming error")

    for fault, status in ((down, 503), (bug, 500)):
        monkeypatch.setattr(submission_service, "receive_submission", fault)
        app.testing = False  # a 500 as in production, not the exception re-raised into the test
        monkeypatch.setattr(lean, "ENABLED", True)
        fast = _shape(_token_post(app.test_client(), world["token"], household_xml(_iid())))
        monkeypatch.setattr(lean, "ENABLED", False)
        slow = _shape(_token_post(app.test_client(), world["token"], household_xml(_iid())))
        assert fast[0] == status
        assert fast == slow


def test_odd_requests_go_to_flask(app: Any, world: dict[str, Any], monkeypatch: Any) -> None:
    """A control character in the query string or an encoded character in the path: Flask's checks answer."""
    handled: list[str] = []
    real = lean.LeanSubmissions.handle
    monkeypatch.setattr(lean.LeanSubmissions, "handle",
                        lambda self, environ, *a: handled.append(environ["PATH_INFO"]) or real(self, environ, *a))
    client = app.test_client()
    token = world["token"]
    resp = client.post(f"/v1/key/{token}/projects/1/submission?deviceID=a%00b", headers=OR,
                       data=_body(household_xml(_iid())), content_type="multipart/form-data")
    assert resp.status_code == 400 and b"control" in resp.data.lower()
    resp = client.post("/v1/projects/99999999999/submission", headers=OR, data=_body(household_xml(_iid())),
                       content_type="multipart/form-data")
    assert resp.status_code == 404
    assert handled == []
