"""Faults the XNAT emulator injects on request, for tests; thread-safe, one instance per emulator.

Each fault imitates something a real XNAT (Tomcat, its database, a proxy in front) has been
seen to do. Counted faults are consumed by the request (or zip) that they break; the settings
(`scan_ids`, `digests_off`, vanished scans) hold until `clear()`.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Drip:
    """Send a response one byte every `interval` seconds, after its first `after_bytes` (status
    line and headers count), for `seconds` (then at full speed; None: to the end)."""

    interval: float
    seconds: float | None
    after_bytes: int = 0


class FaultState:
    """Pending faults and fault settings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: deque[int] = deque()
        self._cuts: deque[int] = deque()
        self._garbage = 0
        self._corrupt = 0
        self._oversize: deque[int | None] = deque()
        self._drips: deque[tuple[str | None, Drip]] = deque()
        self._short_listings: deque[int] = deque()
        self._unavailable_until = 0.0
        self.scan_ids: dict[str, str] = {}
        self.digests_off = False
        self._vanishing: dict[str, list] = {}  # scan id -> [listings left, "404" or "empty"]

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

    def oversize_next_member(self, extra_bytes: int | None, times: int = 1) -> None:
        """In each of the next `times` zips the first member carries `extra_bytes` more bytes
        than its file (and its listing) has; None: the member never ends (garbage forever)."""
        with self._lock:
            self._oversize.extend([extra_bytes] * times)

    def drip_next(self, drip: Drip, kind: str | None = None, times: int = 1) -> None:
        """The next `times` answers (of that kind, "json" or "zip", or any) are dripped."""
        with self._lock:
            self._drips.extend([(kind, drip)] * times)

    def shorten_next_listing(self, drop: int = 1, times: int = 1) -> None:
        """The next `times` listings lose their last `drop` rows but keep the full totalRecords,
        as a result cut short by a database timeout does."""
        with self._lock:
            self._short_listings.extend([drop] * times)

    def unavailable_for(self, seconds: float) -> None:
        """Every request, logins included, answers 503 for the next `seconds` (XNAT starting)."""
        with self._lock:
            self._unavailable_until = time.monotonic() + seconds

    def vanish_scan(self, scan_id: str, after_listings: int = 1, how: str = "404") -> None:
        """Scan `scan_id` shows in the next `after_listings` scan listings, then is gone: absent
        from listings, its files answer 404 (`how="404"`) or an empty listing (`how="empty"`)."""
        if how not in ("404", "empty"):
            raise ValueError(f"how must be '404' or 'empty', not {how!r}")
        with self._lock:
            self._vanishing[scan_id] = [after_listings, how]

    def clear(self) -> None:
        """Drop every pending fault and setting: the server is well again."""
        with self._lock:
            for pending in (self._fail, self._cuts, self._oversize, self._drips, self._short_listings):
                pending.clear()
            self._garbage = self._corrupt = 0
            self._unavailable_until = 0.0
            self.scan_ids = {}
            self.digests_off = False
            self._vanishing.clear()

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

    def take_oversize(self) -> tuple[bool, int | None]:
        """(whether the next zip's first member is oversized, by how many bytes; None: endless)."""
        with self._lock:
            return (True, self._oversize.popleft()) if self._oversize else (False, None)

    def take_drip(self, kind: str) -> Drip | None:
        with self._lock:
            for i, (wanted, drip) in enumerate(self._drips):
                if wanted in (None, kind):
                    del self._drips[i]
                    return drip
            return None

    def take_short_listing(self) -> int:
        with self._lock:
            return self._short_listings.popleft() if self._short_listings else 0

    def unavailable(self) -> bool:
        with self._lock:
            return time.monotonic() < self._unavailable_until

    def scan_listed(self, scan_id: str) -> bool:
        """Whether a scans listing shows this scan now (consumes one of a vanishing scan's listings)."""
        with self._lock:
            state = self._vanishing.get(scan_id)
            if state is None:
                return True
            if state[0] > 0:
                state[0] -= 1
                return True
            return False

    def vanished(self, scan_id: str) -> str | None:
        """"404" or "empty" when the scan has vanished, else None."""
        with self._lock:
            state = self._vanishing.get(scan_id)
            return state[1] if state is not None and state[0] <= 0 else None
