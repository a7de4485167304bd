"""One run at a time per session: a lock file per session label, held by each step while it
writes the session's folders and rows. Two runs of one label (a retry overlapping a re-run
started by hand, two cron jobs) then take turns step by step instead of deleting each other's
partial downloads and conversions; a run that cannot get the lock within its wait fails with
the reason (who holds it, for how long), and is retried like any failed transfer."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from datman_flow.layout import DataLayout
from datman_flow.safe_paths import safe_component

DEFAULT_WAIT_SECONDS = 30 * 60.0
POLL_SECONDS = 0.2


class SessionBusy(RuntimeError):
    """Another run holds the session's lock for longer than this run may wait."""


def lock_path(layout: DataLayout, label: str) -> Path:
    return layout.root / "state" / "locks" / f"{safe_component(label, 'session label')}.lock"


@contextmanager
def session_lock(layout: DataLayout, label: str, step: str,
                 wait_seconds: float = DEFAULT_WAIT_SECONDS) -> Iterator[None]:
    """Hold the session's lock for the duration of one step (waiting up to `wait_seconds`)."""
    path = lock_path(layout, label)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise SessionBusy(f"session {label!r} is being processed by {holder}; gave up waiting "
                                      f"after {wait_seconds:.0f} s to run {step}") from None
                time.sleep(POLL_SECONDS)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} ({step}, since {time.strftime('%Y-%m-%d %H:%M:%S')})")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Whether this process got the lock file `path` (held for the block), without waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_locked(layout: DataLayout, label: str) -> bool:
    """Whether a run (in this or another process) holds the session's lock right now."""
    path = lock_path(layout, label)
    if not path.exists():
        return False
    with try_lock(path) as got:
        return not got
