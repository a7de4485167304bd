"""Streaming a stored (uncompressed) zip as HTTP/1.1 chunks, with the emulator's zip faults.

The zip is written to an unseekable sink, so `zipfile` puts each member's CRC and sizes in a
data descriptor after its bytes, as XNAT's streamed zips do; no Content-Length is known.
"""
from __future__ import annotations

import io
import time
import zipfile

from .index import FileEntry

CHUNK = 1 << 16


class StreamCut(Exception):
    """Raised when an injected cut ends a zip stream."""


class ChunkedWriter(io.RawIOBase):
    """Unseekable sink writing HTTP/1.1 chunks of ~CHUNK bytes; optionally breaks off after a limit.

    Pieces are collected as they come and joined once per chunk, together with the chunk's
    size line and trailer, so each byte is copied once on its way to the socket.
    """

    def __init__(self, out: io.BufferedIOBase, limit: int | None) -> None:
        super().__init__()
        self._out, self._limit = out, limit
        self._pieces: list[bytes] = []
        self._pending = 0
        self.sent = 0
        self._dead = False

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        if self._dead:
            raise StreamCut()
        size = len(data)
        self._pieces.append(data if type(data) is bytes else bytes(data))
        self._pending += size
        if self._pending >= CHUNK:
            self._flush()
        return size

    def _flush(self) -> None:
        size, pieces = self._pending, self._pieces
        self._pieces, self._pending = [], 0
        if not size:
            return
        if self._limit is not None and self.sent + size > self._limit:
            self._dead = True  # announce the full chunk, send only part of it, then drop
            data = b"".join(pieces)
            self._out.write(b"%X\r\n" % size + data[: max(0, self._limit - self.sent)])
            raise StreamCut()
        self._out.write(b"".join([b"%X\r\n" % size, *pieces, b"\r\n"]))
        self.sent += size

    def finish(self) -> None:
        self._flush()
        if self._limit is not None:  # a cut beyond the end: drop before the terminating chunk
            self._dead = True
            raise StreamCut()
        self._out.write(b"0\r\n\r\n")


def write_zip(sink: ChunkedWriter, members: list[tuple[str, FileEntry]], corrupt_first: bool,
              oversize: tuple[bool, int | None] = (False, None)) -> None:
    """Write the members as a stored zip to an unseekable sink (sizes in data descriptors).

    `oversize` = (True, n): the first member carries n bytes of garbage after its file's bytes
    (its header says so, the listing does not); (True, None): it never ends."""
    grow, extra = oversize
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for arcname, f in members:
            stamp = time.localtime(max(f.mtime_ns / 1e9, 315532800 + 86400))[:6]
            info = zipfile.ZipInfo(arcname, date_time=stamp)
            info.file_size = f.size + (extra or 0) if grow else f.size
            with open(f.path, "rb") as src, zf.open(info, "w", force_zip64=grow) as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    if corrupt_first:
                        chunk, corrupt_first = bytes([chunk[0] ^ 0xFF]) + chunk[1:], False
                    dst.write(chunk)
                if grow:
                    _garbage(dst, extra)
                    grow = False


def _garbage(dst, n_bytes: int | None) -> None:  # type: ignore[no-untyped-def]
    """n_bytes of filler (forever when None: until the client goes away)."""
    block = bytes(1 << 16)
    left = n_bytes
    while left is None or left > 0:
        piece = block if left is None or left >= len(block) else block[:left]
        dst.write(piece)
        if left is not None:
            left -= len(piece)
