"""Operations endpoints: /healthz, /readyz, /metrics, plus request ids, request logs and metrics.

    /healthz  the process answers (no database, no blob store): for a load balancer's liveness check
    /readyz   the database and the blob store answer: 200, else 503 naming what is down
    /metrics  Prometheus text format, for a Bearer CAREFILE_METRICS_TOKEN or an address in
              CAREFILE_METRICS_ALLOW; refused (403) otherwise, and when neither is set
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request
from sqlalchemy import text

from app.routeaccess import PUBLIC, declare
from app.runtime import runtime
from app.services import metrics

from .logs import REQUEST_ID, configure_logging, new_request_id

bp = Blueprint("ops", __name__)
log = logging.getLogger("carefile.request")
readiness_log = logging.getLogger("carefile.ops")


@bp.get("/healthz")
@declare(PUBLIC, note="liveness: the process answers; reveals nothing")
def healthz() -> tuple[str, int, dict[str, str]]:
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}


@bp.get("/readyz")
@declare(PUBLIC, note="readiness: database and blob store reachable; names the failing part, no details")
def readyz() -> tuple[Response, int]:
    rt = runtime()
    checks: dict[str, str] = {}
    try:
        with rt.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means "not ready"; the log has the reason
        readiness_log.exception("readyz: database unreachable")
        checks["database"] = "unreachable"
    try:
        root = getattr(rt.store, "root", None)
        if root is not None and not (root.is_dir() and _writable(root)):
            raise OSError(f"blob folder {root} is missing or not writable")
        rt.store.exists("0" * 64)  # S3: a HEAD request; raises when the bucket cannot be reached
        checks["blob_store"] = "ok"
    except Exception:  # noqa: BLE001
        readiness_log.exception("readyz: blob store unreachable")
        checks["blob_store"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    resp = jsonify(status="ready" if ready else "not ready", checks=checks)
    resp.headers["Cache-Control"] = "no-store"
    if not ready:
        resp.headers["Retry-After"] = "5"
    return resp, 200 if ready else 503


def _writable(path: Any) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


@bp.get("/metrics")
@declare(PUBLIC, note="no user sign-in: Bearer CAREFILE_METRICS_TOKEN or an address in CAREFILE_METRICS_ALLOW")
def metrics_view() -> Response:
    cfg = runtime().config
    if not _metrics_allowed(cfg):
        if not cfg["METRICS_TOKEN"] and not cfg["METRICS_ALLOW"]:
            msg = ("Metrics are not enabled. Set CAREFILE_METRICS_TOKEN (Prometheus sends it as a Bearer "
                   "token) or CAREFILE_METRICS_ALLOW (addresses allowed to scrape).\n"
                   "未启用监控指标。请设置 CAREFILE_METRICS_TOKEN(Prometheus 以 Bearer 令牌发送)"
                   "或 CAREFILE_METRICS_ALLOW(允许抓取的地址)。\n")
        else:
            msg = ("Not allowed: send the metrics token as 'Authorization: Bearer <token>', or scrape from an "
                   "address listed in CAREFILE_METRICS_ALLOW.\n"
                   "无权访问:请以 'Authorization: Bearer <令牌>' 发送监控令牌,或从 CAREFILE_METRICS_ALLOW "
                   "中列出的地址抓取。\n")
        resp = Response(msg, status=403, content_type="text/plain; charset=utf-8")
        if cfg["METRICS_TOKEN"]:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return resp
    rt = runtime()
    try:
        with rt.db.reader() as session:
            body = metrics.render(session)
    except Exception:  # noqa: BLE001 - the process counters are still worth scraping
        readiness_log.exception("metrics: database gauges unavailable")
        body = metrics.render(None)
    return Response(body, content_type=metrics.CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def _metrics_allowed(cfg: dict[str, Any]) -> bool:
    token = cfg["METRICS_TOKEN"]
    auth = request.headers.get("Authorization", "")
    if token and auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
        return True
    allow = cfg["METRICS_ALLOW"]
    if allow and request.remote_addr:
        try:
            addr = ipaddress.ip_address(request.remote_addr)
        except ValueError:
            return False
        return any(addr in net for net in allow)
    return False


def parse_networks(value: Any) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """CAREFILE_METRICS_ALLOW: comma-separated addresses or networks (10.0.0.0/8, 127.0.0.1, ::1)."""
    if not value:
        return []
    if not isinstance(value, str):
        return list(value)
    out = []
    for part in value.replace(";", ",").split(","):
        if part.strip():
            try:
                out.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"CAREFILE_METRICS_ALLOW: {part.strip()!r} is not an address or network") from exc
    return out


# ------------------------------------------------------------------------------ every request


def _before() -> None:
    g.carefile_started = time.perf_counter()
    g.carefile_request_token = REQUEST_ID.set(new_request_id(request.headers.get("X-Request-Id")))


def _after(resp: Response) -> Response:
    started = g.pop("carefile_started", None)
    elapsed = time.perf_counter() - started if started is not None else 0.0
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    submission = request.method == "POST" and bool(request.endpoint) and request.endpoint.startswith(
        "openrosa.submission")
    record(rule, request.method, resp.status_code, elapsed, request.files if submission else None)
    resp.headers["X-Request-Id"] = REQUEST_ID.get()
    return resp


def record(rule: str, method: str, status: int, elapsed: float, submission_files: Any = None) -> None:
    """The request's metrics and its log line (the access log). `submission_files`: the multipart files of an
    OpenRosa submission POST (their bytes count when it was stored), None for any other request. Also called
    by the submission fast path (app/lean.py), which answers without Flask."""
    code = str(status)
    metrics.REQUESTS.labels(rule, method, code).inc()
    if submission_files is not None:
        metrics.SUBMISSION_SECONDS.labels(code).observe(elapsed)
        metrics.SUBMISSIONS.labels(code).inc()
        if status == 201:
            metrics.ATTACHMENT_BYTES.inc(file_bytes(submission_files))
    log.info("%s %s %s %.1fms", method, rule, code, elapsed * 1000,
             extra={"method": method, "route": rule, "status": status, "ms": round(elapsed * 1000, 1)})


def file_bytes(files: Any) -> int:
    """Bytes of the file parts other than the submission XML (already parsed by the view)."""
    total = 0
    for name, storage in files.items(multi=True):
        if name == "xml_submission_file":
            continue
        stream = storage.stream
        try:
            pos = stream.tell()
            stream.seek(0, 2)
            total += stream.tell()
            stream.seek(pos)
        except (OSError, ValueError):
            total += storage.content_length or 0
    return total


def _teardown(_exc: BaseException | None) -> None:
    token = g.pop("carefile_request_token", None)
    if token is not None:
        try:
            REQUEST_ID.reset(token)
        except ValueError:  # torn down in another context (test clients): just forget the id
            REQUEST_ID.set("-")


def init_app(app: Flask) -> None:
    cfg = app.config["CAREFILE"]
    configure_logging(cfg["LOG_FORMAT"])
    cfg["METRICS_ALLOW"] = parse_networks(cfg["METRICS_ALLOW"])
    app.register_blueprint(bp)
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)
