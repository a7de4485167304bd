"""How many zip downloads the XNAT emulator is streaming at once, for the soak test
(benchmarks/soak.py): what a real server would see of the lab's `pulls_per_xnat` limit.

A download counts from its first byte to its last (or until the client leaves); the peaks are
kept until `reset()`: streams at once, sessions with a stream at once, streams of one session at
once.
"""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class DownloadPeaks:
    streams: int  # zip streams at once
    sessions: int  # sessions with at least one zip stream at once
    per_session: int  # zip streams of one session at once
    total: int  # zip streams started since the last reset


class DownloadGauge:
    """Thread-safe counter of the zip streams in flight, per session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self._peaks = DownloadPeaks(0, 0, 0, 0)

    @contextmanager
    def streaming(self, session: str) -> Iterator[None]:
        with self._lock:
            self._open[session] += 1
            p = self._peaks
            self._peaks = DownloadPeaks(max(p.streams, sum(self._open.values())), max(p.sessions, len(self._open)),
                                        max(p.per_session, self._open[session]), p.total + 1)
        try:
            yield
        finally:
            with self._lock:
                self._open[session] -= 1
                if self._open[session] <= 0:
                    del self._open[session]

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._open.values())

    def peaks(self) -> DownloadPeaks:
        with self._lock:
            return self._peaks

    def reset(self) -> None:
        """Start the peaks again from what is in flight now."""
        with self._lock:
            streams = sum(self._open.values())
            self._peaks = DownloadPeaks(streams, len(self._open), max(self._open.values(), default=0), 0)
