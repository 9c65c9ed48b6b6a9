"""Background export jobs: queue → atomic claim → run with heartbeat and progress → blob store.

- `create_job` adds a queued ExportJob (audited as export.create).
- A worker claims the oldest queued job with `UPDATE export_job SET status='running' … WHERE
  id=? AND status='queued'`: of several workers (threads, gunicorn processes, hosts) exactly one
  gets rowcount 1.
- While a job runs, its worker writes a heartbeat every few seconds and the progress after every
  batch (`heartbeat_at`).
- `requeue_stale` puts a 'running' job whose heartbeat is older than STALE_SECONDS back in the
  queue: its worker died (process killed, host lost). After MAX_ATTEMPTS claims it fails instead,
  so a job that kills its worker every time cannot loop forever. The worker that comes back late finds it
  no longer owns the job (its guarded UPDATEs match no row) and stops.
- The file is spooled to a temporary file, then `store.put` (local disk or S3); the job keeps
  blob key, md5 (the ETag), size and file name for the ranged download.
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import problems
from app.db import Database
from app.errors import Problem
from app.models import ExportJob, Form, FormVersion, User, utcnow
from app.services import access, audit
from app.services.exports import parallel
from app.services.exports.csvzip import write_csvzip
from app.services.exports.jsonexport import write_json
from app.services.exports.options import ExportOptions
from app.services.exports.tabular import Plan
from app.services.exports.xlsx import write_xlsx
from storage import BlobStore

log = logging.getLogger(__name__)

STALE_SECONDS = 120
MAX_ATTEMPTS = 3
HEARTBEAT_SECONDS = 5.0
EXTENSIONS = {"csvzip": "zip", "xlsx": "xlsx", "json": "json"}
CONTENT_TYPES = {"csvzip": "application/zip", "childzip": "application/zip", "json": "application/json",
                 "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class LostJob(Exception):
    """The job was re-queued (our heartbeat looked dead) and may now belong to another worker."""


def worker_name() -> str:
    return f"{os.getpid()}.{threading.get_ident() % 100000}@{socket.gethostname()}"[:100]


def create_job(session: Session, user: User, form: Form, options: ExportOptions, ip: str = "") -> ExportJob:
    """Queue an export of form for user (checks the user's rights now; the worker checks again)."""
    access.require_reader(user)
    options.check_allowed(user)
    Plan(session, form, user, options)  # fails now (400/403/404) rather than in the worker
    job = ExportJob(project_id=form.project_id, user_id=user.id, form_id=form.id, kind=options.format,
                    options=options.to_dict(), status="queued",
                    filename=f"{form.xml_form_id}.{EXTENSIONS[options.format]}")
    session.add(job)
    session.flush()
    audit.record(session, user, "export.create", target=f"form:{form.xml_form_id}", ip=ip, job=job.id,
                 format=options.format, options=options.to_dict())
    return job


def get_job(session: Session, user: User, job_id: int) -> ExportJob:
    """The user's own job (an export carries its creator's rights), else 404."""
    job = session.get(ExportJob, job_id)
    if job is None or job.user_id != user.id or job.project_id != user.project_id:
        raise problems.NO_SUCH_EXPORT()
    return job


def list_jobs(session: Session, user: User, limit: int = 20) -> list[ExportJob]:
    access.require_reader(user)
    return list(session.scalars(select(ExportJob).where(ExportJob.user_id == user.id)
                                .order_by(ExportJob.id.desc()).limit(limit)))


def status_of(job: ExportJob) -> dict[str, Any]:
    percent = 100 if job.status == "done" else (min(99, job.progress * 100 // job.total) if job.total else 0)
    return {"id": job.id, "status": job.status, "format": job.kind, "progress": job.progress, "total": job.total,
            "percent": percent, "filename": job.filename, "size": job.size, "error": job.error,
            "options": job.options, "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def requeue_stale(db: Database, stale_seconds: float = STALE_SECONDS) -> int:
    """Put running jobs whose worker stopped sending heartbeats back in the queue."""
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    with db.write() as s:
        stale = (ExportJob.status == "running", ExportJob.heartbeat_at < cutoff)
        s.execute(update(ExportJob).where(*stale, ExportJob.attempts >= MAX_ATTEMPTS).values(
            status="failed", finished_at=utcnow(),
            error="The export stopped several times (its worker process died). Try a smaller export."))
        res = s.execute(update(ExportJob).where(*stale).values(status="queued", worker="", progress=0))
        count = int(res.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        log.warning("re-queued %d export job(s) whose worker died", count)
    return count


def claim(db: Database, worker: str) -> int | None:
    """Atomically take the oldest queued job; None if there is none."""
    with db.write() as s:
        ids = list(s.scalars(select(ExportJob.id).where(ExportJob.status == "queued").order_by(ExportJob.id).limit(5)))
        for jid in ids:
            now = utcnow()
            res = s.execute(update(ExportJob).where(ExportJob.id == jid, ExportJob.status == "queued")
                            .values(status="running", worker=worker, started_at=now, heartbeat_at=now, progress=0,
                                    error="", attempts=ExportJob.attempts + 1))
            if res.rowcount == 1:  # type: ignore[attr-defined]
                return jid
    return None


def _owned(job_id: int, worker: str) -> Any:
    return (ExportJob.id == job_id, ExportJob.worker == worker, ExportJob.status == "running")


def _touch(db: Database, job_id: int, worker: str, **values: Any) -> None:
    with db.write() as s:
        res = s.execute(update(ExportJob).where(*_owned(job_id, worker)).values(heartbeat_at=utcnow(), **values))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise LostJob(job_id)


class _Heartbeat(threading.Thread):
    def __init__(self, db: Database, job_id: int, worker: str, every: float) -> None:
        super().__init__(name=f"export-heartbeat-{job_id}", daemon=True)
        self.db, self.job_id, self.worker, self.every = db, job_id, worker, every
        self.stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                _touch(self.db, self.job_id, self.worker)
            except LostJob:
                self.lost = True
                return
            except Exception:  # a busy database: try again at the next beat
                log.exception("export heartbeat failed")


@contextmanager
def _data_session(db: Database, user_id: int, form_id: int) -> Iterator[Session]:
    """Where the export reads its rows: the read replica when there is one and it already has the form's
    newest version and the user (a form published a moment ago may not have reached it), else the primary."""
    with db.bulk_read() as s:
        form = s.get(Form, form_id)
        if s.info.get("replica") and (s.get(User, user_id) is None or form is None or not _has_current(s, form)):
            s.close()
            with db.session() as primary:
                yield primary
            return
        yield s


def _has_current(s: Session, form: Form) -> bool:
    return form.current_version_id is None or s.get(FormVersion, form.current_version_id) is not None


def run_job(db: Database, store: BlobStore, job_id: int, worker: str,
            heartbeat: float = HEARTBEAT_SECONDS) -> str:
    """Run a claimed job to the end; returns its final status (done, failed, or lost)."""
    beat = _Heartbeat(db, job_id, worker, heartbeat)
    beat.start()
    try:
        with db.session() as p:  # the job as just claimed: the primary
            job = p.get(ExportJob, job_id)
            if job is None or not job.user_id or not job.form_id:
                raise problems.EXPORT_OWNER_GONE()
            kind, options, user_id, form_id = job.kind, job.options, job.user_id, job.form_id
        with _data_session(db, user_id, form_id) as s, tempfile.TemporaryFile(prefix="carefile-export-") as tmp:
            user, form = s.get(User, user_id), s.get(Form, form_id)
            if user is None or form is None:
                raise problems.EXPORT_OWNER_GONE()
            if not user.active:
                raise problems.EXPORT_OWNER_DISABLED()
            plan = Plan(s, form, user, ExportOptions.parse(options))
            total = plan.count(s)
            _touch(db, job_id, worker, total=total)

            def progress(done: int) -> None:
                if beat.lost:
                    raise LostJob(job_id)
                _touch(db, job_id, worker, progress=done)

            if kind == "csvzip":
                write_csvzip(plan, s, tmp, store, progress, parallel.processes_setting(), total)
            elif kind == "xlsx":
                write_xlsx(plan, s, tmp, progress)
            else:
                write_json(plan, s, tmp, progress)
            s.rollback()  # end the long read transaction before the upload
            tmp.flush()
            tmp.seek(0)
            info = store.put(tmp)
        with db.write() as w:
            res = w.execute(update(ExportJob).where(*_owned(job_id, worker)).values(
                status="done", blob_key=info.key, md5=info.md5, size=info.size, finished_at=utcnow(),
                progress=ExportJob.total))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                raise LostJob(job_id)
        return "done"
    except LostJob:
        log.warning("export job %s was taken over by another worker", job_id)
        return "lost"
    except Exception as err:
        message = err.message if isinstance(err, Problem) else f"{type(err).__name__}: {err}"
        if not isinstance(err, Problem):
            log.exception("export job %s failed", job_id)
        with db.write() as w:
            w.execute(update(ExportJob).where(*_owned(job_id, worker)).values(
                status="failed", error=message[:2000], finished_at=utcnow()))
        return "failed"
    finally:
        beat.stopped.set()
        beat.join()


def expire(session: Session, *, keep_days: int, everything: bool = False) -> list[str]:
    """Finished exports older than `keep_days` (`everything`: all of them, e.g. after care files were
    anonymised: their files hold what is gone) lose their file: the job says "expired". Returns the blob keys
    to delete after the commit (delete_files)."""
    q = select(ExportJob).where(ExportJob.status == "done").with_for_update()
    if not everything:
        q = q.where(ExportJob.finished_at <= utcnow() - timedelta(days=max(keep_days, 0)))
    keys = []
    for job in session.scalars(q):
        if job.blob_key:
            keys.append(job.blob_key)
        job.status, job.blob_key, job.md5, job.size = "expired", None, None, None
    session.flush()
    return keys


def delete_files(session: Session, store: BlobStore, keys: list[str]) -> int:
    """After the commit: delete the expired exports' files no job still refers to; returns how many."""
    if not keys:
        return 0
    still = set(session.scalars(select(ExportJob.blob_key).where(ExportJob.blob_key.in_(keys))))
    gone = 0
    for key in sorted(set(keys) - still):
        store.delete(key)
        gone += 1
    return gone


def expire_old(db: Database, store: BlobStore, keep_days: int) -> int:
    """Expire finished exports past `keep_days` and delete their files (the worker does it as it polls)."""
    with db.write() as session:
        keys = expire(session, keep_days=keep_days)
    with db.session() as session:
        return delete_files(session, store, keys)


def run_pending(db: Database, store: BlobStore, worker: str | None = None, limit: int = 100) -> int:
    """Re-queue dead jobs, then run queued jobs until none is left (or limit); returns how many ran."""
    worker = worker or worker_name()
    requeue_stale(db)
    ran = 0
    while ran < limit and (jid := claim(db, worker)) is not None:
        run_job(db, store, jid, worker)
        ran += 1
    return ran


class Worker:
    """A daemon thread in the app process that runs queued export jobs."""

    def __init__(self, db: Database, store: BlobStore, poll: float = 2.0, keep_days: int | None = None) -> None:
        self.db, self.store, self.poll, self.keep_days = db, store, poll, keep_days
        self._expired_at = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="export-worker", daemon=True)

    def start(self) -> Worker:
        self.thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self.thread.join(timeout)

    def _loop(self) -> None:
        name = worker_name()
        while not self._stop.is_set():
            try:
                run_pending(self.db, self.store, name)
                if self.keep_days is not None and time.monotonic() - self._expired_at > 600:
                    self._expired_at = time.monotonic()
                    expire_old(self.db, self.store, self.keep_days)  # finished exports past their days
            except Exception:
                log.exception("export worker: error while looking for jobs")
            self._wake.wait(self.poll)
            self._wake.clear()


_workers: dict[int, Worker] = {}  # one per process and database (pid check: gunicorn forks)
_lock = threading.Lock()


def ensure_worker(db: Database, store: BlobStore, keep_days: int | None = None) -> Worker:
    """Start this process's worker for db (once); it also expires finished exports after `keep_days`."""
    key = (os.getpid() << 20) ^ id(db)
    with _lock:
        w = _workers.get(key)
        if w is None or not w.thread.is_alive():
            w = _workers[key] = Worker(db, store, keep_days=keep_days).start()
        return w


def wake_workers() -> None:
    for w in list(_workers.values()):
        w.wake()
