"""Operations endpoints: /healthz, /readyz, /metrics (and who may read it), request ids, JSON logs."""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from app.services.metrics import samples
from tests.support.sample_forms import household_xml

TOKEN = "s3cret-metrics-token"
PHOTO = b"\xff\xd8" + b"p" * 4000


def metric(text: bytes, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples(text) if n == name and all(lab.get(k) == x for k, x in labels.items()))


def scrape(app: Any) -> bytes:
    resp = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200, resp.data
    assert resp.content_type.startswith("text/plain")
    return bytes(resp.data)


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "METRICS_TOKEN": TOKEN}


def test_healthz_and_readyz(app: Any, rt: Any) -> None:
    client = app.test_client()
    resp = client.get("/healthz")
    assert (resp.status_code, resp.data) == (200, b"ok\n")
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ready", "checks": {"database": "ok", "blob_store": "ok"}}


def test_readyz_reports_a_missing_blob_folder(app: Any, rt: Any) -> None:
    shutil.rmtree(rt.store.root)
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert resp.get_json()["checks"] == {"database": "ok", "blob_store": "unreachable"}


def test_metrics_refused_without_the_token(app: Any) -> None:
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        resp = client.get("/metrics", headers=headers)
        assert resp.status_code == 403
        assert b"Authorization: Bearer" in resp.data and "监控令牌".encode() in resp.data
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"carefile_http_requests" not in resp.data


@pytest.mark.parametrize("settings, status", [
    ({}, 403),  # nothing configured: metrics are off
    ({"METRICS_ALLOW": "10.0.0.0/8"}, 403),
    ({"METRICS_ALLOW": "10.1.2.3, 127.0.0.0/8"}, 200),  # the test client comes from 127.0.0.1
])
def test_metrics_by_address(app_config: dict[str, Any], settings: dict[str, str], status: int) -> None:
    from app import create_app

    cfg = {**app_config, "METRICS_TOKEN": None, **settings}
    application = create_app(cfg)
    try:
        resp = application.test_client().get("/metrics")
        assert resp.status_code == status
        if not settings:
            assert b"not enabled" in resp.data
    finally:
        application.extensions["carefile"].db.dispose()


def test_metrics_count_submissions_requests_and_export_jobs(app: Any, rt: Any, submit: Callable[..., Any],
                                                            collector: Any) -> None:
    from app.models import ExportJob
    from app.services.identity import users

    before = scrape(app)
    resp = submit(household_xml("uuid:ops-1"), files={"photo.jpg": PHOTO})
    assert resp.status_code == 201
    bad = submit(b"<not xml")
    assert bad.status_code == 400
    with rt.db.write() as s:
        token = users.issue_token(s, users.get_user(s, "tashi"), rt.config["SECRET_KEY"]).token
        s.add_all([ExportJob(project_id=1, kind="csvzip", status="failed"),
                   ExportJob(project_id=1, kind="xlsx", status="failed")])
    assert app.test_client().get(f"/v1/key/{token}/projects/1/formList",
                                 headers={"X-OpenRosa-Version": "1.0"}).status_code == 200
    after = scrape(app)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("carefile_submissions_received_total", status="201") == 1
    assert delta("carefile_submissions_received_total", status="400") == 1
    assert delta("carefile_attachment_bytes_received_total") == len(PHOTO)
    assert delta("carefile_submission_seconds_count", status="201") == 1
    assert delta("carefile_http_requests_total", route="/v1/projects/<int:project_id>/submission",
                 method="POST", status="201") == 1
    # Routes are templates: the collector's token never appears in the metrics.
    assert delta("carefile_http_requests_total", route="/v1/key/<token>/projects/<int:project_id>/formList",
                 status="200") == 1
    assert token.encode() not in after
    assert metric(after, "carefile_export_jobs", status="failed") == 2
    assert metric(after, "carefile_export_jobs", status="queued") == 0


def test_metrics_count_failed_sign_ins(app: Any, rt: Any, make_user: Callable[..., Any]) -> None:
    from app.services.identity import signin

    make_user("norbu", "manager", ["540102"])
    before = scrape(app)
    for _ in range(6):  # five wrong passwords, then the pair must wait: the sixth is throttled unchecked
        with pytest.raises((signin.WrongPassword, signin.Throttled)):
            signin.sign_in(rt.db, "norbu", "wrong password", "192.0.2.7")
    after = scrape(app)
    assert metric(after, "carefile_login_failures_total", reason="password") - \
        metric(before, "carefile_login_failures_total", reason="password") == 5
    assert metric(after, "carefile_login_failures_total", reason="throttled") - \
        metric(before, "carefile_login_failures_total", reason="throttled") == 1


def test_request_id_and_json_request_log(app: Any) -> None:
    from app.ops.logs import JsonFormatter, RequestIdFilter

    out = StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("carefile.request")
    logger.addHandler(handler)
    try:
        client = app.test_client()
        resp = client.get("/v1/projects/1/forms/nope.xml?q=扎西", headers={"X-Request-Id": "abc-123"})
        generated = client.get("/healthz").headers["X-Request-Id"]
    finally:
        logger.removeHandler(handler)
    assert resp.headers["X-Request-Id"] == "abc-123"
    assert len(generated) == 32 and generated != "abc-123"
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    first = lines[0]
    assert first["request_id"] == "abc-123"
    assert first["route"] == "/v1/projects/<int:project_id>/forms/<xml_form_id>.xml"
    assert first["status"] == resp.status_code and first["method"] == "GET"
    assert "扎西" not in out.getvalue() and "nope" not in out.getvalue()  # no paths, no query strings
    assert lines[1]["request_id"] == generated


def test_log_format_setting_is_checked(app_config: dict[str, Any]) -> None:
    from app import create_app

    with pytest.raises(ValueError, match="LOG_FORMAT"):
        create_app({**app_config, "LOG_FORMAT": "xml"})


def test_serve_prints_reachable_addresses_not_the_wildcard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.ops import serving

    monkeypatch.setattr(serving, "reachable_addresses", lambda: ["fd00::5", "192.168.1.20"])
    assert serving.phone_urls("0.0.0.0", 8000, None) == ["http://192.168.1.20:8000"]
    assert serving.phone_urls("::", 8000, None) == ["http://192.168.1.20:8000", "http://[fd00::5]:8000"]
    assert serving.phone_urls("0.0.0.0", 8000, "https://care.example.org/") == ["https://care.example.org"]
    assert serving.phone_urls("10.0.0.2", 80, None) == ["http://10.0.0.2:80"]
    monkeypatch.setattr(serving, "reachable_addresses", lambda: [])
    assert serving.phone_urls("0.0.0.0", 8000, None) == ["http://127.0.0.1:8000"]


def test_reachable_addresses_leave_out_loopback() -> None:
    from app.ops.serving import reachable_addresses

    for addr in reachable_addresses():
        assert not addr.startswith("127.") and addr not in ("::1", "0.0.0.0")


def test_sql_errors_do_not_show_the_values(rt: Any, make_user: Callable[..., Any]) -> None:
    """An SQL error's message (logged with its traceback) leaves out the statement's parameters."""
    from sqlalchemy.exc import IntegrityError

    from app.models import User

    make_user("tsering")
    with pytest.raises(IntegrityError) as err, rt.db.write() as s:
        s.add(User(project_id=1, username="tsering", role="collector", display_name="扎西次仁 13912345678",
                   password_hash="x", digest_ha1="x"))
    assert "扎西次仁" not in str(err.value) and "13912345678" not in str(err.value)
    assert "hidden due to hide_parameters" in str(err.value)


def test_serve_keeps_worker_heartbeats_off_the_database_disk(rt: Any) -> None:
    import os

    from app.ops.serving import gunicorn_settings

    settings = gunicorn_settings(rt.config)
    assert settings["accesslog"] is None  # our request log only (no tokens in gunicorn's)
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        assert settings["worker_tmp_dir"] == "/dev/shm"


def test_serve_builds_no_access_log_fields(rt: Any) -> None:
    """gunicorn with a logging config computes every request's access-log fields even without an access log;
    `carefile serve`'s logger class does not (our request log line is the access log)."""
    from gunicorn.config import Config

    from app.ops.serving import NoAccessLogLogger, gunicorn_settings

    cfg = Config()
    for key, value in gunicorn_settings(rt.config).items():
        cfg.set(key, value)
    assert cfg.logger_class is NoAccessLogLogger
    logger = cfg.logger_class(cfg)
    # A response and request gunicorn's own logger could not read: nothing is read, nothing is written.
    assert logger.access(object(), object(), {}, None) is None
