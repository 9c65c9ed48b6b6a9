"""Zip entries assembled from pieces deflated by other processes (app/services/exports/deflate.py)."""
from __future__ import annotations

import io
import random
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from app.services.exports import deflate


def test_crc32_combine_equals_the_crc_of_the_joined_bytes() -> None:
    rng = random.Random(7)
    sizes = [0, 1, 2, 3, 7, 8, 255, 256, 1023, 4096, 65_537, 1_000_003]
    for _ in range(60):
        a = rng.randbytes(rng.choice(sizes))
        b = rng.randbytes(rng.choice(sizes))
        assert deflate.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    # lengths with many bits set, without making the bytes: b is zeros, whose CRC zlib gives quickly
    for n in (2**24 - 1, 3 * 2**20 + 5, 2**26 + 2**13 + 1):
        b = bytes(n)
        assert deflate.crc32_combine(zlib.crc32(b"x"), zlib.crc32(b), n) == zlib.crc32(b"x" + b)


def _piece(tmp_path: Path, name: str, text: str) -> deflate.Piece:
    path = tmp_path / name
    with open(path, "wb") as raw:
        sink = deflate.DeflateSink(raw)
        wrapper = io.TextIOWrapper(sink, encoding="utf-8", newline="")  # type: ignore[arg-type]
        wrapper.write(text)
        wrapper.flush()
        crc, size = sink.end()
        wrapper.detach()
    return deflate.Piece(str(path), crc, size)


class Unseekable(io.RawIOBase):
    """An output zipfile cannot seek back in: it writes data descriptors (a streamed download)."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += b
        return len(b)


@pytest.mark.parametrize("seekable", [True, False])
def test_an_entry_of_its_own_rows_and_other_processes_pieces_reads_back_whole(tmp_path: Path, seekable: bool) -> None:
    rng = random.Random(3)
    own = "SubmissionDate,名字,KEY\r\n" + "".join(f"2026-12-0{i % 9 + 1},次仁{i},uuid:{i}\r\n" for i in range(5000))
    parts = ["".join(f"{rng.random()},卓玛,{'x' * rng.randrange(40)}\r\n" for _ in range(3000)), "",
             "tail,only one row\r\n"]
    pieces = [_piece(tmp_path, f"p{i}", t) for i, t in enumerate(parts)]
    out: Any = io.BytesIO() if seekable else Unseekable()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("main.csv", "w", force_zip64=True) as entry:
            entry.write(own.encode())
            for _ in deflate.append(entry, pieces, 4096):
                pass
        spool = io.BytesIO()
        first = deflate.DeflateSink(spool)
        first.write("首,行\r\n".encode())
        info = zipfile.ZipInfo("repeat.csv")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as entry:
            for _ in deflate.append(entry, [deflate.Piece(spool, *first.end()), pieces[0]], 1000):
                pass
        zf.writestr("after.txt", "still a zip")
    data = bytes(out.getvalue() if seekable else out.data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None  # every CRC-32 checks
        assert zf.read("main.csv").decode() == own + "".join(parts)
        assert zf.read("repeat.csv").decode() == "首,行\r\n" + parts[0]
        assert zf.read("after.txt") == b"still a zip"
        assert zf.getinfo("main.csv").file_size == len((own + "".join(parts)).encode())
    # the pieces went in as they were deflated, not decompressed and deflated again
    assert Path(pieces[0].source).read_bytes() in data  # type: ignore[arg-type]


def test_append_refuses_an_entry_it_does_not_know() -> None:
    with pytest.raises(RuntimeError, match="cannot append"):
        list(deflate.append(io.BytesIO(), [deflate.Piece("x", 0, 0)], 10))


def test_no_pieces_leaves_the_entry_as_zipfile_writes_it() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("a.csv", "w") as entry:
        entry.write(b"a,b\r\n")
        assert list(deflate.append(entry, [], 10)) == []
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
        assert zf.read("a.csv") == b"a,b\r\n"
