"""/metrics across gunicorn workers (prometheus_client multiprocess mode) and JSON logs, on a live server."""
from __future__ import annotations

import json
from pathlib import Path

import requests

from app.services.metrics import samples
from tests.e2e.live import LiveServer


def test_metrics_add_up_every_worker_and_logs_are_json(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    srv = LiveServer.prepare(tmp_path / "srv", {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                                               "CAREFILE_METRICS_TOKEN": "scrape-me", "CAREFILE_LOG_FORMAT": "json"})
    srv.workers = 2
    try:
        srv.cli("init")
        srv.start()
        for _ in range(40):
            assert requests.get(f"{srv.url}/healthz", timeout=10, headers={"Connection": "close"}).status_code == 200
        assert requests.get(f"{srv.url}/metrics", timeout=10).status_code == 403
        seen = set()
        for _ in range(6):  # whichever worker answers, it reports the requests of both
            resp = requests.get(f"{srv.url}/metrics", timeout=10, headers={"Authorization": "Bearer scrape-me",
                                                                            "Connection": "close"})
            assert resp.status_code == 200
            healthz = sum(v for n, lab, v in samples(resp.content)
                          if n == "carefile_http_requests_total" and lab.get("route") == "/healthz")
            assert healthz >= 40  # startup polling adds a few
            seen.add(resp.headers["X-Request-Id"])
        assert len(seen) == 6
        assert len(list(metrics_dir.glob("counter_*.db"))) >= 2  # one file per worker process
        lines = [json.loads(line) for line in srv.log().splitlines() if line.startswith("{")]
        requests_logged = [line for line in lines if line.get("logger") == "carefile.request"]
        assert len(requests_logged) >= 46
        assert all(len(line["request_id"]) == 32 and line["route"] for line in requests_logged)
    finally:
        srv.stop()


def test_healthz_needs_no_database(tmp_path: Path) -> None:
    """Liveness answers even before `carefile init` (readiness is what checks the database)."""
    srv = LiveServer.prepare(tmp_path / "srv",
                             {"CAREFILE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    try:
        srv.start()
        assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200
        resp = requests.get(f"{srv.url}/readyz", timeout=30)
        assert resp.status_code == 503 and resp.json()["checks"]["database"] == "unreachable"
        assert resp.headers["Retry-After"] == "5"
    finally:
        srv.stop()
