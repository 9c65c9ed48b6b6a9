"""CSV zip in ODK Central's / Briefcase's layout: `<form>.csv`, `<form>-<repeat>.csv`, `media/…`.

Every CSV is UTF-8 with a BOM (so Excel shows Chinese) and CRLF line ends; cells that Excel
would run as formulas are neutralised. The main CSV is written straight into its zip entry as
rows arrive; each repeat CSV is deflated into a temporary file (memory up to 1 MB, then disk) as its
rows arrive and copied in after it (deflate.py), then the media files are copied in from the blob
store in chunks. A large export split over processes (parallel.py) writes each entry as its header
followed by the chunks' deflated pieces, in order.

`csvzip_steps` is a generator that writes to any file object and yields between batches, so
the same code fills a temporary file (background jobs) or feeds an HTTP response (`stream_csvzip`).
Streamed, the zip goes out as it is written: the output is not seekable, so zipfile writes each
entry's sizes and CRC after its data (data descriptors), and photos are copied from the blob store
chunk by chunk — neither the zip nor any photo is held in memory or copied to a temporary file.
`stream_csv` is the main table alone (Central's `submissions.csv`).
"""
from __future__ import annotations

import codecs
import io
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any

from sqlalchemy.orm import Session

from app.services.exports import deflate, parallel
from app.services.exports.tabular import Plan
from app.services.spreadsheets import CsvWriter
from storage import BlobNotFound, BlobStore

SPOOL = 1024 * 1024
CHUNK = 256 * 1024


class Pipe:
    """A write-only file object whose bytes are taken out by a generator (a streaming zip)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _text(stream: IO[bytes]) -> io.TextIOWrapper:
    """A text stream on `stream` that starts with the UTF-8 BOM. The BOM is written here and the text encoded
    as plain UTF-8 (the same bytes as "utf-8-sig"): TextIOWrapper encodes UTF-8 in C, while "utf-8-sig" calls
    its Python encoder for every row written."""
    stream.write(codecs.BOM_UTF8)
    return io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=False)  # type: ignore[arg-type]


def csvzip_steps(plan: Plan, session: Session, out: Any, store: BlobStore,
                 progress: Callable[[int], None] | None = None, processes: int = 1,
                 total: int | None = None, threshold: int | None = None,
                 stats: dict[str, Any] | None = None) -> Iterator[None]:
    """Write the CSV zip of plan to out, yielding now and then (between batches, media chunks).
    With processes > 1 and at least `threshold` rows, child processes render parts of the rows
    (parallel.py); the output is the same."""
    helpers = parallel.start(plan, session, processes, total, threshold)
    try:
        yield from _steps(plan, session, out, store, progress, helpers)
        if stats is not None:
            stats["children_vmhwm_kb"] = helpers.vmhwm_kb() if helpers else []
            stats["chunks_by_process"] = [helpers.rendered_by[k] for k in range(helpers.chunks)] if helpers else []
    finally:
        if helpers is not None:
            helpers.close()


def _steps(plan: Plan, session: Session, out: Any, store: BlobStore, progress: Callable[[int], None] | None,
           helpers: parallel.Helpers | None) -> Iterator[None]:
    zf = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    main_entry = zf.open(f"{plan.tables[0].name}.csv", "w", force_zip64=True)
    main_text = _text(main_entry)
    main = CsvWriter(main_text)
    main.writerow(plan.tables[0].headers)
    spools: list[tuple[Any, deflate.DeflateSink, io.TextIOWrapper, CsvWriter]] = []
    for t in plan.tables[1:]:  # deflated as they are written: only the copy into the zip is left for the end
        raw = tempfile.SpooledTemporaryFile(max_size=SPOOL, mode="w+b")
        sink = deflate.DeflateSink(raw)
        text = _text(sink)
        w = CsvWriter(text)
        w.writerow(t.headers)
        spools.append((raw, sink, text, w))
    media = tempfile.SpooledTemporaryFile(max_size=SPOOL, mode="w+b") if plan.options.media else None
    try:
        if helpers is None:  # the rows straight into the zip's entry and the spools
            yield from parallel.render_rows(plan, plan.records(session, progress=progress),
                                            [main.writerow] + [w.writerow for *_, w in spools], media)
        else:  # chunks rendered by this thread and the children into deflated pieces (parallel.py)
            yield from helpers.render(session, progress)
        main_text.flush()
        main_text.detach()
        if helpers is not None:
            yield from deflate.append(main_entry, helpers.pieces(0), CHUNK)
        main_entry.close()
        yield None
        for i, (t, (raw, sink, text, _w)) in enumerate(zip(plan.tables[1:], spools, strict=True), start=1):
            text.flush()
            pieces = [deflate.Piece(raw, *sink.end())] + (helpers.pieces(i) if helpers is not None else [])
            yield from _entry_of(zf, f"{t.name}.csv", pieces)
        if media is not None:
            if helpers is not None:
                for _ in parallel.copy_files(helpers.media_files(), media, CHUNK):
                    pass
            yield from _media(zf, media, store)
        zf.close()
        yield None
    finally:
        for raw, _sink, text, _w in spools:
            text.detach()
            raw.close()
        if media is not None:
            media.close()


def _entry_of(zf: zipfile.ZipFile, name: str, pieces: list[deflate.Piece]) -> Iterator[None]:
    info = zipfile.ZipInfo(name, date_time=_now())
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size = sum(p.size for p in pieces)  # zipfile decides from it whether the entry needs ZIP64
    with zf.open(info, "w") as dst:
        yield from deflate.append(dst, pieces, CHUNK)


def _media(zf: zipfile.ZipFile, listing: Any, store: BlobStore) -> Iterator[None]:
    listing.seek(0)
    used: dict[str, str] = {}
    for line in listing:
        name, key = json.loads(line)
        if used.get(name) == key:
            continue  # the same file (same content) under the same name: once is enough
        entry = name if name not in used else f"{key.rsplit('/', 1)[-1][:8]}-{name}"
        used[entry] = key
        try:
            if key.startswith("decrypted:"):  # decrypted on the fly (encryption.ExportDecryptor's temp folder)
                path = key.split(":", 1)[1]
                size, src = os.path.getsize(path), open(path, "rb")  # noqa: SIM115 - closed below
            else:
                size = store.size(key)
                src = store.open(key)
        except (BlobNotFound, FileNotFoundError):
            continue
        with src:
            # Photos are compressed already: stored, not deflated.
            info = zipfile.ZipInfo(f"media/{entry}", date_time=_now())
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = size
            with zf.open(info, "w") as dst:
                while chunk := src.read(CHUNK):
                    dst.write(chunk)
                    yield None


def _now() -> tuple[int, int, int, int, int, int]:
    t = time.localtime()
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def write_csvzip(plan: Plan, session: Session, out: Any, store: BlobStore,
                 progress: Callable[[int], None] | None = None, processes: int = 1, total: int | None = None,
                 threshold: int | None = None, stats: dict[str, Any] | None = None) -> None:
    """The CSV zip into out; `processes` > 1 splits a large export over that many processes."""
    for _ in csvzip_steps(plan, session, out, store, progress, processes, total, threshold, stats):
        pass


def stream_csvzip(plan: Plan, session: Session, store: BlobStore) -> Iterator[bytes]:
    """The CSV zip as a stream of byte chunks (for a direct HTTP download)."""
    pipe = Pipe()
    for _ in csvzip_steps(plan, session, pipe, store):
        chunk = pipe.take()
        if chunk:
            yield chunk
    tail = pipe.take()
    if tail:
        yield tail


def stream_csv(plan: Plan, session: Session, batch_bytes: int = 64 * 1024) -> Iterator[bytes]:
    """The main table alone as CSV (Central's `submissions.csv`): UTF-8 with a BOM, CRLF, in chunks."""
    buf = io.StringIO()
    writer = CsvWriter(buf)
    writer.writerow(plan.tables[0].headers)
    yield b"\xef\xbb\xbf"
    main_row = plan.main_row
    for rec in plan.records(session):
        writer.writerow(main_row(rec))
        if buf.tell() >= batch_bytes:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")
