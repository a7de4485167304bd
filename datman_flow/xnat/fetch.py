"""Downloading several scans of one session at once, each verified by `download_scan`.

A few worker threads (each with its own client, so its own HTTP session and JSESSIONID) take
scans from a shared queue in the order given; results come back in that order. While one
worker waits on the network another hashes and writes files, which is where the time of a
session pull goes (MD5 and file writes release the GIL).

A scan ID that cannot be a folder name (XNAT's IDs are free text: '..', 'a/b', '/abs') is
failed with the reason before any path is built from it. Every scan has its deadline, and the
wait for the workers has one too (their scans' deadlines, plus POOL_GRACE).
"""
from __future__ import annotations

import logging
import math
import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from datman_flow.safe_paths import UnsafePath, safe_component

from .client import XnatClient
from .deadline import Deadline
from .download import SCAN_TIMEOUT, ScanDownload, download_scan
from .errors import XnatDeadline

log = logging.getLogger(__name__)

POOL_GRACE = 60.0  # seconds the wait for the workers allows beyond their scans' deadlines


def fetch_session(client_factory: Callable[[], XnatClient], experiment_id: str, scans: Sequence[str],
                  dest_root: Path, *, workers: int = 3, require_digest: bool = False,
                  scan_timeout: float = SCAN_TIMEOUT) -> list[ScanDownload]:
    """Download `scans` of an experiment into `dest_root/<scan id>/`, up to `workers` at a time.

    Every scan ends 'complete' (verified, see download_scan, which `require_digest` and
    `scan_timeout` are passed to) or 'failed' with its reason; a failing scan never stops the
    others. XnatAuthError (credentials refused: no scan can succeed) or an unexpected exception
    stops the workers from starting more scans and is raised once the running ones have
    finished; no partial folder is ever left as a scan's folder. Each worker gets its own client
    from `client_factory` and closes it at the end.
    """
    scan_ids = [str(s) for s in scans]
    repeated = sorted(s for s, n in Counter(scan_ids).items() if n > 1)
    if repeated:
        raise ValueError(f"scans listed more than once: {', '.join(repeated)}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    results: list[ScanDownload | None] = [None] * len(scan_ids)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i, scan_id in enumerate(scan_ids):
        try:
            safe_component(scan_id, "XNAT scan ID")
        except UnsafePath as exc:
            log.error("scan %r of experiment %s refused: %s", scan_id, experiment_id, exc)
            results[i] = ScanDownload(scan_id, "failed", str(exc))
        else:
            todo.put(i)
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with client_factory() as client:
                while not stop.is_set():
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    scan_id = scan_ids[i]
                    results[i] = download_scan(client, experiment_id, scan_id, dest_root / scan_id,
                                               require_digest=require_digest, scan_timeout=scan_timeout)
                    done = sum(r is not None for r in results)
                    log.info("experiment %s: %d of %d scans done", experiment_id, done, len(scan_ids))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            stop.set()
            errors.append(exc)

    n_todo = todo.qsize()
    n_workers = min(workers, n_todo)
    if n_workers:
        _run_workers(work, n_workers, experiment_id,
                     Deadline(scan_timeout * math.ceil(n_todo / n_workers) + POOL_GRACE,
                              f"the wait for the workers fetching experiment {experiment_id}"), stop)
    if errors:
        raise errors[0]
    finished = [r for r in results if r is not None]
    assert len(finished) == len(scan_ids)  # every worker ended normally, so the queue is empty
    complete = sum(r.status == "complete" for r in finished)
    log.info("experiment %s: %d of %d scans complete", experiment_id, complete, len(finished))
    return finished


def _run_workers(work: Callable[[], None], n: int, experiment_id: str, wait: Deadline,
                 stop: threading.Event) -> None:
    """Run `work` in n daemon threads and wait for them until `wait` passes (each scan has its own
    deadline, so this only ends a wait that something unforeseen made endless)."""
    threads = [threading.Thread(target=work, name=f"xnat-fetch-{experiment_id}-{k}", daemon=True)
               for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(wait.remaining(), 0.0))
    running = sum(thread.is_alive() for thread in threads)
    if running:
        stop.set()
        raise XnatDeadline(f"{running} of {n} workers fetching experiment {experiment_id} did not finish "
                           f"within {wait}; they are left behind")
