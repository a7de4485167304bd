"""Faults the XNAT emulator injects on request, for tests; thread-safe, one instance per emulator."""
from __future__ import annotations

import threading
from collections import deque


class FaultState:
    """Pending faults: each is consumed by the request (or zip) that it breaks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: deque[int] = deque()
        self._cuts: deque[int] = deque()
        self._garbage = 0
        self._corrupt = 0

    # arming ----------------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503) -> None:
        """The next n requests (except /data/JSESSION) answer `status`."""
        with self._lock:
            self._fail.extend([status] * n)

    def cut_next_zip(self, after_bytes: int, times: int = 1) -> None:
        """The next `times` zip downloads break off (unterminated) after `after_bytes` bytes,
        or just before the terminating chunk when the zip is smaller than that."""
        with self._lock:
            self._cuts.extend([after_bytes] * times)

    def garbage_next(self, n: int) -> None:
        """The next n listing (JSON) requests answer 200 with an HTML page."""
        with self._lock:
            self._garbage += n

    def corrupt_next_file(self, n: int = 1) -> None:
        """In each of the next n zips, one member's bytes are flipped (its MD5 changes)."""
        with self._lock:
            self._corrupt += n

    def clear(self) -> None:
        """Drop every pending fault: the server is well again."""
        with self._lock:
            self._fail.clear()
            self._cuts.clear()
            self._garbage = self._corrupt = 0

    # consuming -------------------------------------------------------------------------
    def take_failure(self) -> int | None:
        with self._lock:
            return self._fail.popleft() if self._fail else None

    def take_garbage(self) -> bool:
        with self._lock:
            if self._garbage:
                self._garbage -= 1
                return True
            return False

    def take_zip_faults(self) -> tuple[int | None, bool]:
        """(byte count after which to cut the stream or None, whether to corrupt a member)."""
        with self._lock:
            cut = self._cuts.popleft() if self._cuts else None
            corrupt = self._corrupt > 0
            self._corrupt -= int(corrupt)
            return cut, corrupt
