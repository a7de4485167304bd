"""dcm2niix's hidden work folders: made beside the outputs, held while in use, removed after.

A conversion writes into `.<stem>.<random>/` inside the session's NIfTI folder and holds an
exclusive lock on the `.lock` file in it until it is done. A run killed mid-conversion (the
worker killed, the machine rebooted) cannot remove its folder, and the kernel drops its lock; the
next conversion of the session removes every such folder of that session whose lock it can take
(and lock-less folders an older version left, once older than `UNLOCKED_GRACE_SECONDS`).
Removals go through `safe_paths.remove_tree`, so never outside the session's folder.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from datman_flow.safe_paths import remove_tree

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
UNLOCKED_GRACE_SECONDS = 60.0  # a folder is made and locked within microseconds


@contextmanager
def work_folder(out_dir: Path, stem: str) -> Iterator[Path]:
    """A fresh hidden folder `.<stem>.<random>` in `out_dir`, locked while the block runs and
    removed after it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=out_dir))
    try:
        with open(work / LOCK_NAME, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield work
    finally:
        try:
            remove_tree(work, out_dir)
        except OSError as exc:  # the next conversion of the session removes it
            log.warning("could not remove work folder %s: %s", work, exc)


def in_use(work: Path, now: float | None = None) -> bool:
    """Whether a live conversion holds `work` (its lock is taken, or it has no lock yet and
    is younger than the grace period)."""
    lock_path = work / LOCK_NAME
    try:
        handle = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        age = (time.time() if now is None else now) - work.stat().st_mtime
        return age < UNLOCKED_GRACE_SECONDS
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)  # closing drops the lock if we took it
    return False


def remove_leftover_work(out_dir: Path, prefix: str) -> list[str]:
    """Remove the hidden work folders `.<prefix>...` in `out_dir` that no live conversion holds
    (`prefix`: the session label and '_', so other sessions sharing the folder are left alone);
    returns their names."""
    if not out_dir.is_dir():
        return []
    removed = []
    for path in sorted(out_dir.iterdir()):
        if not path.name.startswith(f".{prefix}") or path.is_symlink() or not path.is_dir():
            continue
        try:
            if in_use(path):
                log.info("work folder %s is in use by a running conversion: kept", path)
                continue
            remove_tree(path, out_dir)
        except OSError as exc:  # not ours to fail the conversion over: tried again next run
            log.warning("could not remove work folder %s: %s", path, exc)
            continue
        removed.append(path.name)
    if removed:
        log.warning("removed %d work folder(s) a stopped conversion left in %s: %s", len(removed), out_dir,
                    ", ".join(removed))
    return removed
