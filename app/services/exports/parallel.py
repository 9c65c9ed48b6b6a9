"""A large CSV zip rendered by several processes (background jobs; CAREFILE_EXPORT_PROCESSES).

Rendering rows is CPU-bound Python (JSON decoding, cells, the csv writer), so one process uses one
CPU. For a form with at least THRESHOLD matching submissions, the keyset range (created_at, id) is
cut into contiguous chunks, large first and smaller towards the end (`chunk_sizes`: each a share of
what is left, at least MIN_CHUNK rows), and the processes take the chunks in order from one queue as
each finishes the previous one: the exporting thread, and child processes started with the 'spawn'
method (a fresh interpreter: no fork of a threaded gunicorn worker, no export worker thread, no Flask
app — each opens its own `Database` from the same URL). A child starts a second or two late (its
imports; more with a cold disk) and no two processes render at the same speed, so a fixed split left
one process idle at the end; taking chunks as they come, all finish within about one small chunk of
each other. The children are started before the chunks are cut, so their start-up overlaps that walk.

Every process deflates a chunk's rows of every table into temporary files (UTF-8, no BOM, no header)
and writes its media listing; the parent then writes each table's entry as its header followed by the
chunks' compressed pieces in order (deflate.py), so the zip's CSVs are byte for byte those of a
single-process export and no process compresses another's rows. Each process reads in batches, so
each stays bounded in memory.

Children report progress (rows done), each chunk's pieces and, at the end, the tables' headers (checked
against the parent's: a form version published meanwhile fails the job rather than mixing layouts) and
their peak RSS. If the export stops (error, lost job), the children are terminated and the files removed.
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
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import DEFAULTS
from app.db import Database
from app.models import Form, User
from app.services.exports import deflate
from app.services.exports.options import ExportOptions
from app.services.exports.tabular import Plan
from app.services.spreadsheets import CsvWriter

YIELD_EVERY = 200
THRESHOLD = 30_000  # fewer matching submissions: one process (a child starts ~1 s late; 20,000 did not gain)
MIN_CHUNK = 4_000  # rows: ~0.3 s of one process, what the last chunks may leave one process waiting
POLL = 0.2

Bound = tuple[Any, int]  # (created_at, id) of a chunk's last row


def processes_setting() -> int:
    """CAREFILE_EXPORT_PROCESSES: processes per CSV zip job; default min(2, CPUs)."""
    raw = os.environ.get("CAREFILE_EXPORT_PROCESSES") or DEFAULTS.get("EXPORT_PROCESSES")
    if raw in (None, "", "auto"):
        return min(2, os.cpu_count() or 1)
    try:
        return max(1, int(raw))
    except ValueError as err:
        raise ValueError(f"CAREFILE_EXPORT_PROCESSES must be a whole number, got {raw!r}") from err


def chunk_sizes(total: int, processes: int) -> list[int]:
    """Rows per chunk, in order: each a 1/(2 × processes) share of the rows left, at least MIN_CHUNK (guided
    self-scheduling: few chunks, and small ones at the end, when a process that finishes early has nothing
    else to take)."""
    sizes: list[int] = []
    left = total
    while left > 0:
        size = min(left, max(MIN_CHUNK, -(-left // (2 * processes))))
        sizes.append(size)
        left -= size
    return sizes or [0]


def chunk_bounds(plan: Plan, session: Session, sizes: list[int]) -> list[Bound]:
    """The (created_at, id) of the last row of each chunk but the last, from one walk of the positions."""
    ends, at = [], 0
    for size in sizes[:-1]:
        at += size
        ends.append(at)
    if not ends:
        return []
    walk = plan.positions().subquery()
    numbered = select(walk.c.created_at, walk.c.id,
                      func.row_number().over(order_by=(walk.c.created_at, walk.c.id)).label("n")).subquery()
    rows = session.execute(select(numbered.c.created_at, numbered.c.id).where(numbered.c.n.in_(ends))
                           .order_by(numbered.c.n)).all()
    return [(r[0], int(r[1])) for r in rows]


def _vmhwm_kb() -> int:
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0


def part_files(folder: str, chunk: int, plan: Plan) -> tuple[list[str], str]:
    stem = os.path.join(folder, f"chunk{chunk}")
    return [f"{stem}-{i}.deflate" for i in range(len(plan.tables))], f"{stem}-media.jsonl"


def render_rows(plan: Plan, records: Iterator[Any], writers: list[Callable[[list[Any]], Any]],
                media: IO[bytes] | None) -> Iterator[None]:
    """Each record's row to writers[0], its repeat rows to the writer of their table, its media files (name, key)
    as JSON lines to `media`; yields every YIELD_EVERY records. Returns (as the generator's value) how many."""
    n = 0
    main_row, repeat_row, write_main = plan.main_row, plan.repeat_row, writers[0]
    for rec in records:
        write_main(main_row(rec))
        for rep in rec.repeats:
            writers[rep.table](repeat_row(rep))
        if media is not None:
            for name, key in rec.media:
                media.write(json.dumps([name, key]).encode() + b"\n")
        n += 1
        if n % YIELD_EVERY == 0:
            yield None
    return n


def write_part(plan: Plan, session: Session, folder: str, chunk: int, after: Bound | None, upto: Bound | None,
               progress: Callable[[int], None] | None = None) -> Iterator[None]:
    """Rows of every table for the range (after, upto], deflated into one file per table (no BOM, no header):
    pieces of the zip's entries (deflate.py); yields now and then. Returns (as the generator's value) each
    table's (CRC-32, size) of the text and the number of records."""
    csvs, media_path = part_files(folder, chunk, plan)
    raws = [open(p, "wb") for p in csvs]
    sinks = [deflate.DeflateSink(r) for r in raws]
    texts = [io.TextIOWrapper(k, encoding="utf-8", newline="") for k in sinks]  # type: ignore[arg-type]
    try:
        with open(media_path, "wb") as media:
            n = yield from render_rows(plan, plan.records(session, progress=progress, after=after, upto=upto),
                                       [CsvWriter(t).writerow for t in texts], media)
        for t in texts:
            t.flush()
        return [k.end() for k in sinks], n
    finally:
        for t, r in zip(texts, raws, strict=True):
            t.detach()
            r.close()


def _finish(steps: Iterator[None]) -> Any:
    """Run a generator to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _next_task(tasks: Any) -> Any:
    """The next chunk from the queue (None: no more); None too if the exporting process is gone before it could
    put the chunks in (a child must not wait for them forever)."""
    while True:
        try:
            return tasks.get(timeout=POLL * 5)
        except queue_mod.Empty:
            parent = multiprocessing.parent_process()
            if parent is not None and not parent.is_alive():
                return None


def _child(url: str, form_id: int, user_id: int, options: dict[str, Any], folder: str, index: int,
           tasks: Any, out: Any) -> None:
    """Entry point of a child process (spawned): chunks from `tasks` until a None."""
    db = Database(url)
    code = 0
    try:
        with db.session() as s:
            form, user = s.get(Form, form_id), s.get(User, user_id)
            if form is None or user is None:
                raise RuntimeError("the form or the user of this export no longer exists")
            plan = Plan(s, form, user, ExportOptions.parse(options))
            done = 0
            while (task := _next_task(tasks)) is not None:
                chunk, after, upto = task
                pieces, n = _finish(write_part(plan, s, folder, chunk, after, upto,
                                               lambda rows, base=done: out.put(("progress", index, base + rows))))
                done += n
                out.put(("progress", index, done))
                out.put(("chunk", index, (chunk, pieces)))
            headers = [t.headers for t in plan.tables]
        out.put(("done", index, {"headers": headers, "vmhwm_kb": _vmhwm_kb()}))
    except BaseException as err:  # reported to the parent, which fails the job
        code = 1
        out.put(("error", index, f"{type(err).__name__}: {err}"))
    finally:
        db.dispose()
    # Once the messages are through, the parent has all it needs: leave without the interpreter's teardown of
    # every module and object, which took 0.3-0.4 s at the end of a large export (bench/scale).
    out.close()
    out.join_thread()
    os._exit(code)


class Helpers:
    """Child processes taking chunks of the rows beside the exporting thread (`render`)."""

    def __init__(self, plan: Plan, session: Session, parts: int, total: int | None = None) -> None:
        self.plan = plan
        total = plan.count(session) if total is None else total
        self.folder = tempfile.mkdtemp(prefix="carefile-export-parts-")
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()  # from the children: progress, chunks done, the end
        self.tasks = ctx.Queue()  # to every process: the chunks, then one None each
        self.done: dict[int, int] = {}
        self.finished: dict[int, dict[str, Any]] = {}
        self.pieces_of: dict[int, list[tuple[int, int]]] = {}  # chunk → its tables' (CRC-32, size)
        self.rendered_by: dict[int, int] = {}  # chunk → the process that rendered it (0: the exporting thread)
        self.procs = []
        url = session.get_bind().engine.url.render_as_string(hide_password=False)
        try:
            for i in range(1, parts):
                p = ctx.Process(target=_child, name=f"carefile-export-part{i}", daemon=True,
                                args=(url, plan.form.id, plan.user.id, plan.options.to_dict(), self.folder, i,
                                      self.tasks, self.queue))
                p.start()
                self.procs.append(p)
            bounds = chunk_bounds(plan, session, chunk_sizes(total, parts))
            self.chunks = len(bounds) + 1
            for k in range(self.chunks):
                self.tasks.put((k, bounds[k - 1] if k else None, bounds[k] if k < len(bounds) else None))
            for _ in range(parts):
                self.tasks.put(None)
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
            elif kind == "chunk":
                chunk, pieces = value
                self.pieces_of[chunk], self.rendered_by[chunk] = pieces, index
            elif kind == "done":
                if value["headers"] != [t.headers for t in self.plan.tables]:
                    raise RuntimeError("The form changed during the export (a new version?). Try again.")
                self.finished[index] = value
            else:
                raise RuntimeError(f"export part {index} failed: {value}")
        for i, p in enumerate(self.procs, start=1):
            if i not in self.finished and p.exitcode is not None and p.exitcode != 0:
                raise RuntimeError(f"export part {i} stopped (exit code {p.exitcode})")

    def render(self, session: Session, progress: Callable[[int], None] | None) -> Iterator[None]:
        """The exporting thread's share: chunks from the queue until none is left, then wait for the children,
        reporting progress (its rows and theirs); yields now and then."""
        own = 0

        def counted(rows: int) -> None:
            self.poll()
            if progress is not None:
                progress(own + rows + self.rows_done)
        while (task := self.tasks.get()) is not None:
            chunk, after, upto = task
            pieces, n = yield from write_part(self.plan, session, self.folder, chunk, after, upto, counted)
            own += n
            self.pieces_of[chunk], self.rendered_by[chunk] = pieces, 0
        while len(self.finished) < len(self.procs):
            self.poll(POLL)
            if progress is not None:
                progress(own + self.rows_done)
            yield None

    def pieces(self, table: int) -> list[deflate.Piece]:
        """Every chunk's deflated rows of a table, in order (after `render`)."""
        return [deflate.Piece(part_files(self.folder, k, self.plan)[0][table], *self.pieces_of[k][table])
                for k in range(self.chunks)]

    def media_files(self) -> list[str]:
        return [part_files(self.folder, k, self.plan)[1] for k in range(self.chunks)]

    def vmhwm_kb(self) -> list[int]:
        return [self.finished[i]["vmhwm_kb"] for i in sorted(self.finished)]

    def close(self) -> None:
        """Children still at work (the export stopped) are terminated; those done are left to exit."""
        for i, p in enumerate(self.procs, start=1):
            if i not in self.finished and p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        self.queue.close()
        self.tasks.cancel_join_thread()  # chunks no child took (the export stopped): not waited for at exit
        self.tasks.close()
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


__all__ = ["MIN_CHUNK", "THRESHOLD", "Helpers", "chunk_bounds", "chunk_sizes", "processes_setting",
           "render_rows", "start", "write_part"]
