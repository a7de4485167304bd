"""The soak test's memory probe: every 0.5 s, the resident memory (RSS, from /proc) of the
Dagster daemon and all its descendants (the code server, the run workers), their sum's peak and
the largest single run worker's peak."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class MemoryPeaks:
    total_bytes: int = 0  # the daemon and its descendants together
    run_bytes: int = 0  # the largest single run worker (spawned by the code server)
    samples: int = 0
    processes: int = 0  # most processes in the tree at once


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _is_run_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # the code server runs each run in a spawned process (multiprocessing), or `dagster api execute_run`
    return b"spawn_main" in cmdline or b"execute_run" in cmdline


def sample(root: int, peaks: MemoryPeaks) -> None:
    tree, todo, total, count = _children(), [root], 0, 0
    while todo:
        pid = todo.pop()
        rss = _rss(pid)
        total += rss
        count += 1
        if pid != root and _is_run_worker(pid):
            peaks.run_bytes = max(peaks.run_bytes, rss)
        todo += tree.get(pid, [])
    peaks.total_bytes = max(peaks.total_bytes, total)
    peaks.processes = max(peaks.processes, count)
    peaks.samples += 1


class MemoryProbe:
    """Samples the process tree under `root` in a thread until `stop()`."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        self.peaks = MemoryPeaks()
        self._root, self._interval = root, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="soak-memory", daemon=True)

    def start(self) -> MemoryProbe:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            sample(self._root, self.peaks)

    def stop(self) -> MemoryPeaks:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peaks
