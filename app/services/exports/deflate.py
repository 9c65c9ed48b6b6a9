"""Zip entries assembled from pieces compressed elsewhere: each process of a parallel CSV zip deflates its own rows.

A zip entry's data is one raw deflate stream (RFC 1951), its CRC-32 and its sizes. A stream may be cut into
pieces made by different compressors when every piece but the last ends with a sync flush (the stream is
byte-aligned there and no block is marked final) and every piece starts from a fresh compressor (none refers
back to bytes before its own start). So a child process deflates its part's rows into a file (`DeflateSink`),
reports the CRC-32 and length of what it read, and the parent copies the compressed bytes into the entry
(`append`), combining the CRC-32s (`crc32_combine`, zlib's method: the first CRC advanced over the second
piece's length of zero bytes by the GF(2) operators of 2**k zero bytes, each the square of the one before).
The decompressed entry is the same whoever compressed which piece; compressing is no longer left to the parent
after its own rows.

`append` writes into an entry opened with `ZipFile.open(name, "w")`: it keeps the entry's own running CRC and
sizes (attributes of CPython's `zipfile._ZipWriteFile`; `append` checks they are there), so zipfile writes the
header, the data descriptor and the central directory as for any entry.
"""
from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import IO, Any

LEVEL = 1  # as the zip's own entries (csvzip.py): fast, CSV text still shrinks ~6x
_WBITS = -15  # raw deflate, as inside a zip
_MASK = 0xFFFFFFFF
_STATE = ("_compressor", "_fileobj", "_crc", "_file_size", "_compress_size")  # zipfile._ZipWriteFile's


@dataclass(frozen=True, slots=True)
class Piece:
    """A sync-flushed raw deflate piece — a file's path, or an open file read from its start — holding `size` bytes
    of data whose CRC-32 is `crc`."""
    source: str | IO[bytes]
    crc: int
    size: int


class DeflateSink(io.RawIOBase):
    """A binary file object that deflates what is written to it into `dst` and keeps its CRC-32 and size; `end`
    sync-flushes the compressor and gives (crc, size). Wrap it in a TextIOWrapper to write text."""

    def __init__(self, dst: IO[bytes], level: int = LEVEL) -> None:
        super().__init__()
        self._dst = dst
        self._z = zlib.compressobj(level, zlib.DEFLATED, _WBITS)
        self.crc = 0
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data) if isinstance(data, (bytes, bytearray)) else memoryview(data).nbytes
        self.crc = zlib.crc32(data, self.crc)
        self.size += n
        out = self._z.compress(data)
        if out:
            self._dst.write(out)
        return n

    def end(self) -> tuple[int, int]:
        self._dst.write(self._z.flush(zlib.Z_SYNC_FLUSH))
        return self.crc, self.size


def _times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, column) for column in matrix]


_ONE_BYTE: list[int] = [0xEDB88320] + [1 << i for i in range(31)]  # the register through one zero bit
for _ in range(3):
    _ONE_BYTE = _square(_ONE_BYTE)  # two, four, eight zero bits
_ZEROS = [_ONE_BYTE]  # [k]: the register through 2**k zero bytes, made as far as asked


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A + B from crc32(A), crc32(B) and len(B) (zlib's crc32_combine, which Python does not expose):
    crc32(A) advanced through len(B) zero bytes, xor crc32(B)."""
    k = 0
    while len2 > 0:
        if k == len(_ZEROS):
            _ZEROS.append(_square(_ZEROS[-1]))
        if len2 & 1:
            crc1 = _times(_ZEROS[k], crc1)
        len2 >>= 1
        k += 1
    return (crc1 ^ crc2) & _MASK


def append(entry: Any, pieces: list[Piece], chunk: int) -> Iterator[None]:
    """Copy deflated pieces into an entry being written (`ZipFile.open(…, "w")`), after what was written to it so
    far; yields between chunks. The entry's compressor is sync-flushed first and replaced by a fresh one, whose
    final flush at `close()` ends the stream after the pieces."""
    if not pieces:
        return
    missing = [name for name in _STATE if not hasattr(entry, name)]
    if missing:  # a Python whose zipfile keeps an entry's state otherwise: say so rather than write a bad zip
        raise RuntimeError(f"zipfile entries have no {', '.join(missing)}: cannot append deflated pieces")
    flushed = entry._compressor.flush(zlib.Z_SYNC_FLUSH)
    entry._fileobj.write(flushed)
    entry._compress_size += len(flushed)
    for piece in pieces:
        with open(piece.source, "rb") if isinstance(piece.source, str) else nullcontext(piece.source) as src:
            src.seek(0)
            while data := src.read(chunk):
                entry._fileobj.write(data)
                entry._compress_size += len(data)
                yield None
        entry._crc = crc32_combine(entry._crc, piece.crc, piece.size)
        entry._file_size += piece.size
    entry._compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, _WBITS)

