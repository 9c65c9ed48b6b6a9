"""A large CSV zip rendered by several processes (background jobs; CAREFILE_EXPORT_PROCESSES).

Rendering rows is CPU-bound Python (JSON decoding, cells, the csv writer), so one process uses one
CPU. For a form with at least THRESHOLD matching submissions, the keyset range (created_at, id) is
split into K contiguous parts of about equal size. The exporting thread renders the first part
itself, straight into the zip (csvzip.py); each other part is rendered by a child process started
with the 'spawn' method (a fresh interpreter: no fork of a threaded gunicorn worker, no export
worker thread, no Flask app — it opens its own `Database` from the same URL). A child writes its
part's rows of every table to temporary files (UTF-8, no BOM, no header) and its media listing;
the parent appends those files in order after its own rows, so the zip's CSVs are byte for byte
those of a single-process export. Each process reads in batches, so each stays bounded in memory.

Children report progress (rows done) and, at the end, the tables' headers (checked against the
parent's: a form version published meanwhile fails the job rather than mixing layouts) and their
peak RSS. If the export stops (error, lost job), the children are terminated and the files removed.
"""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import queue as queue_mod
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.config import DEFAULTS
from app.db import Database
from app.models import Form, User
from app.services.exports.options import ExportOptions
from app.services.exports.tabular import Plan
from app.services.spreadsheets import CsvWriter

THRESHOLD = 30_000  # fewer matching submissions: one process (a child starts ~0.7 s late; 20,000 did not gain)
POLL = 0.2
LEAD = 0.25  # the parent's part is this much larger: children start ~0.7 s late (a fresh interpreter)


def processes_setting() -> int:
    """CAREFILE_EXPORT_PROCESSES: processes per CSV zip job; default min(2, CPUs)."""
    raw = os.environ.get("CAREFILE_EXPORT_PROCESSES") or DEFAULTS.get("EXPORT_PROCESSES")
    if raw in (None, "", "auto"):
        return min(2, os.cpu_count() or 1)
    try:
        return max(1, int(raw))
    except ValueError as err:
        raise ValueError(f"CAREFILE_EXPORT_PROCESSES must be a whole number, got {raw!r}") from err


def split_points(plan: Plan, session: Session, total: int, parts: int, lead: float = LEAD) -> list[tuple[Any, int]]:
    """The (created_at, id) of the last row of each part but the last: the first part (the parent's)
    has weight 1 + lead, the others 1."""
    q = plan.positions().limit(1)
    points = []
    weight = parts + lead
    for i in range(1, parts):
        row = session.execute(q.offset(max(0, int(total * (i + lead) / weight) - 1))).first()
        if row is None:
            break
        points.append((row[0], int(row[1])))
    return points


def _vmhwm_kb() -> int:
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0


def part_files(folder: str, index: int, plan: Plan) -> tuple[list[str], str]:
    stem = os.path.join(folder, f"part{index}")
    return [f"{stem}-{i}.csv" for i in range(len(plan.tables))], f"{stem}-media.jsonl"


def write_part(plan: Plan, session: Session, folder: str, index: int, after: tuple[Any, int] | None,
               upto: tuple[Any, int] | None, progress: Callable[[int], None] | None = None) -> None:
    """Rows of every table for the range (after, upto], one file per table (no BOM, no header)."""
    csvs, media_path = part_files(folder, index, plan)
    raws = [open(p, "wb") for p in csvs]
    texts = [io.TextIOWrapper(r, encoding="utf-8", newline="") for r in raws]
    try:
        writers = [CsvWriter(t).writerow for t in texts]
        write_main, main_row, repeat_row = writers[0], plan.main_row, plan.repeat_row
        with open(media_path, "wb") as media:
            for rec in plan.records(session, progress=progress, after=after, upto=upto):
                write_main(main_row(rec))
                for rep in rec.repeats:
                    writers[rep.table](repeat_row(rep))
                for name, key in rec.media:
                    media.write(json.dumps([name, key]).encode() + b"\n")
    finally:
        for t in texts:
            t.close()


def _child(url: str, form_id: int, user_id: int, options: dict[str, Any], folder: str, index: int,
           after: tuple[Any, int] | None, upto: tuple[Any, int] | None, out: Any) -> None:
    """Entry point of a child process (spawned)."""
    db = Database(url)
    try:
        with db.session() as s:
            form, user = s.get(Form, form_id), s.get(User, user_id)
            if form is None or user is None:
                raise RuntimeError("the form or the user of this export no longer exists")
            plan = Plan(s, form, user, ExportOptions.parse(options))
            write_part(plan, s, folder, index, after, upto, lambda done: out.put(("progress", index, done)))
            headers = [t.headers for t in plan.tables]
        out.put(("done", index, {"headers": headers, "vmhwm_kb": _vmhwm_kb()}))
    except BaseException as err:  # reported to the parent, which fails the job
        out.put(("error", index, f"{type(err).__name__}: {err}"))
    finally:
        db.dispose()


class Helpers:
    """Child processes rendering parts 1..K-1 while the caller renders part 0 (rows up to `upto`)."""

    def __init__(self, plan: Plan, session: Session, parts: int, total: int | None = None) -> None:
        self.plan = plan
        total = plan.count(session) if total is None else total
        points = split_points(plan, session, total, parts)
        self.upto: tuple[Any, int] | None = points[0] if points else None
        self.folder = tempfile.mkdtemp(prefix="carefile-export-parts-")
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()
        self.done: dict[int, int] = {}
        self.finished: dict[int, dict[str, Any]] = {}
        self.procs = []
        url = session.get_bind().engine.url.render_as_string(hide_password=False)
        bounds = [*points, None]
        try:
            for i in range(1, len(bounds)):
                p = ctx.Process(target=_child, name=f"carefile-export-part{i}", daemon=True,
                                args=(url, plan.form.id, plan.user.id, plan.options.to_dict(), self.folder, i,
                                      bounds[i - 1], bounds[i], self.queue))
                p.start()
                self.procs.append(p)
        except BaseException:
            self.close()
            raise

    @property
    def rows_done(self) -> int:
        return sum(self.done.values())

    def poll(self, timeout: float = 0.0) -> None:
        """Take the children's messages; raise if one failed or died."""
        while True:
            try:
                kind, index, value = self.queue.get(timeout=timeout) if timeout else self.queue.get_nowait()
            except queue_mod.Empty:
                break
            timeout = 0.0
            if kind == "progress":
                self.done[index] = value
            elif kind == "done":
                if value["headers"] != [t.headers for t in self.plan.tables]:
                    raise RuntimeError("The form changed during the export (a new version?). Try again.")
                self.finished[index] = value
            else:
                raise RuntimeError(f"export part {index} failed: {value}")
        for i, p in enumerate(self.procs, start=1):
            if i not in self.finished and p.exitcode is not None and p.exitcode != 0:
                raise RuntimeError(f"export part {i} stopped (exit code {p.exitcode})")

    def wait(self, progress: Callable[[int], None] | None, own: int) -> Iterator[None]:
        """Until every child is done, reporting progress; yields between polls."""
        while len(self.finished) < len(self.procs):
            self.poll(POLL)
            if progress is not None:
                progress(own + self.rows_done)
            yield None
        for p in self.procs:
            p.join()

    def files(self, table: int) -> list[str]:
        return [part_files(self.folder, i, self.plan)[0][table] for i in range(1, len(self.procs) + 1)]

    def media_files(self) -> list[str]:
        return [part_files(self.folder, i, self.plan)[1] for i in range(1, len(self.procs) + 1)]

    def vmhwm_kb(self) -> list[int]:
        return [self.finished[i]["vmhwm_kb"] for i in sorted(self.finished)]

    def close(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(5)
        self.queue.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def start(plan: Plan, session: Session, processes: int, total: int | None = None,
          threshold: int | None = None) -> Helpers | None:
    """Helpers for a large export, or None (one process: small export, or processes < 2)."""
    if processes < 2:
        return None
    threshold = THRESHOLD if threshold is None else threshold
    total = plan.count(session) if total is None else total
    if total < max(threshold, processes):
        return None
    return Helpers(plan, session, processes, total)


def copy_files(paths: list[str], dst: Any, chunk: int) -> Iterator[None]:
    for path in paths:
        with open(path, "rb") as src:
            while data := src.read(chunk):
                dst.write(data)
                yield None


def total_size(paths: list[str]) -> int:
    return sum(Path(p).stat().st_size for p in paths)


__all__ = ["THRESHOLD", "Helpers", "processes_setting", "split_points", "start", "write_part"]
