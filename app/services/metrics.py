"""Prometheus metrics, shared by every gunicorn worker.

Counters and histograms live in prometheus_client. Under several worker processes they use its
multiprocess mode: `carefile serve` points PROMETHEUS_MULTIPROC_DIR at an emptied folder before any
worker starts (prometheus_client reads it when first imported), each worker writes its values to
memory-mapped files there, and a scrape of any worker adds them up. Gauges that describe shared
state (export jobs by status) are not kept per process at all: they are counted in the database at
scrape time, so they are right whichever worker or node answers.

Labels never carry personal data: routes are URL rule templates (`/v1/key/<token>/...`, never the
token or a search term), statuses and outcomes are codes.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import ExportJob

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUESTS = Counter("carefile_http_requests", "HTTP requests answered, by route template, method and status",
                   ["route", "method", "status"])
SUBMISSION_SECONDS = Histogram(
    "carefile_submission_seconds", "Time to answer a submission POST (parse, store files, commit), by status",
    ["status"], buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
SUBMISSIONS = Counter("carefile_submissions_received", "Submission POSTs answered, by status (201 = accepted)",
                      ["status"])
ATTACHMENT_BYTES = Counter("carefile_attachment_bytes_received",
                           "Bytes of files (photos, signatures) in accepted submission POSTs")
ENTITY_LIST_BUILDS = Histogram("carefile_entity_list_build_seconds",
                               "Entity list CSVs built (cache misses) and the time each took",
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
LOGIN_FAILURES = Counter("carefile_login_failures", "Failed web sign-ins, by reason (password, throttled)",
                         ["reason"])

EXPORT_STATUSES = ("queued", "running", "done", "failed")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def export_job_counts(session: Session) -> dict[str, int]:
    """Export jobs by status, counted in the database (the same answer on every worker and node)."""
    counts = dict.fromkeys(EXPORT_STATUSES, 0)
    for status, n in session.execute(select(ExportJob.status, func.count()).group_by(ExportJob.status)):
        counts[str(status)] = int(n)
    return counts


class _DatabaseCollector(Collector):
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        g = GaugeMetricFamily("carefile_export_jobs", "Export jobs by status (counted in the database)",
                              labels=["status"])
        for status, n in sorted(self.counts.items()):
            g.add_metric([status], n)
        yield g


def _process_registry() -> CollectorRegistry:
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


def render(session: Session | None) -> bytes:
    """The text exposition: this server's counters (all workers) plus the database gauges."""
    parts = [generate_latest(_process_registry())]
    if session is not None:
        extra = CollectorRegistry(auto_describe=False)
        extra.register(_DatabaseCollector(export_job_counts(session)))
        parts.append(generate_latest(extra))
    return b"".join(parts)


def mark_process_dead(pid: int) -> None:
    """gunicorn's child_exit hook: drop the live-gauge files of a worker that ended."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


def samples(text: bytes) -> Iterator[tuple[str, dict[str, str], float]]:
    """Parse an exposition (tests, the benchmark): (name, labels, value) for every sample."""
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            yield s.name, dict(s.labels), float(s.value)
