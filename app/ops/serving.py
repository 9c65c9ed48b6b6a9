"""What `carefile serve` needs besides gunicorn itself: metrics across workers, logs, phone URLs."""
from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

from gunicorn import glogging

from .logs import gunicorn_logconfig


def prepare_metrics_dir(data_dir: str) -> str:
    """Point prometheus_client's multiprocess mode at an emptied folder (before it is first imported).

    An operator's own PROMETHEUS_MULTIPROC_DIR is kept; the default is <DATA_DIR>/metrics. Values of
    processes from an earlier run are deleted, so counters start at zero with the server."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(Path(data_dir) / "metrics")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return str(path)


def child_exit(_server: Any, worker: Any) -> None:
    """gunicorn hook: a worker ended; its live gauges no longer count."""
    from app.services.metrics import mark_process_dead

    mark_process_dead(worker.pid)


class NoAccessLogLogger(glogging.Logger):
    """gunicorn's logger without the access log. With a logging config (ours: `logconfig_dict`) gunicorn
    builds every request's access-log fields even when no access log is written (3 % of a worker's CPU
    per submission); the request log line of app/ops/views.py is the access log."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


def gunicorn_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """Settings `carefile serve` adds: our request log instead of gunicorn's access log (which
    would write paths with collector tokens and search terms), gunicorn's own lines in the same
    format, and the metrics hook."""
    settings = {"accesslog": None, "logconfig_dict": gunicorn_logconfig(cfg["LOG_FORMAT"]), "child_exit": child_exit,
                "logger_class": "app.ops.serving.NoAccessLogLogger"}
    # Each worker touches its heartbeat file after every request; on a disk busy with the database's fsyncs
    # that metadata update can wait for the journal. In memory it never does (gunicorn's own advice).
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        settings["worker_tmp_dir"] = "/dev/shm"
    return settings


def reachable_addresses() -> list[str]:
    """This machine's non-loopback IP addresses (what a phone on the same network can reach)."""
    found: list[str] = []

    def add(addr: str) -> None:
        with contextlib.suppress(ValueError):
            ip = ipaddress.ip_address(addr.split("%")[0])
            if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified) and str(ip) not in found:
                found.append(str(ip))

    # The address the default route leaves from: connect() on UDP only picks a route, nothing is sent.
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((target, 9))
            add(s.getsockname()[0])
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None):
            add(str(info[4][0]))
    return found


def phone_urls(host: str, port: int, public_url: str | None) -> list[str]:
    """Base URLs to print for `carefile serve --host HOST`: the public URL if set; for a wildcard
    host every reachable address (IPv4 first), never 0.0.0.0."""
    if public_url:
        return [public_url.rstrip("/")]
    if host in ("0.0.0.0", "::", ""):
        addrs = reachable_addresses()
        if host == "0.0.0.0":
            addrs = [a for a in addrs if ":" not in a]
        addrs.sort(key=lambda a: ":" in a)
        if not addrs:
            addrs = ["127.0.0.1"]
        return [f"http://[{a}]:{port}" if ":" in a else f"http://{a}:{port}" for a in addrs]
    return [f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"]
