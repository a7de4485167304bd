"""Atomic writes: write to a temporary name in the target's folder, then rename over the target.

Files and folders get the mode the process's umask gives them (0o666 / 0o777 & ~umask), like
anything made with open() or mkdir(): `tempfile.mkstemp` and `mkdtemp` make them 0600 / 0700
whatever the umask, which would leave a lab's other users unable to read what was renamed into
place. The umask is the service's to choose (README, "File permissions"); nothing here sets it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it (Linux: /proc/self/status; elsewhere it
    is set and put back at once, which another thread could observe)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def umask_mode(directory: bool = False) -> int:
    """The mode open() or mkdir() would give a new file (or folder) under the current umask."""
    return (0o777 if directory else 0o666) & ~current_umask()


def private_mode() -> int:
    """`umask_mode()` without any permission for others: for secrets (password hashes, the audit
    log), which the lab's group may read as the umask allows, others never."""
    return umask_mode() & ~0o007


def apply_umask(path: Path) -> Path:
    """`path` (a file or folder just made by mkstemp or mkdtemp, 0600 / 0700 whatever the
    umask), given the mode open() or mkdir() would have given it; returned for chaining:
    `tmp = apply_umask(Path(tempfile.mkdtemp(...)))`."""
    os.chmod(path, umask_mode(directory=os.path.isdir(path)))
    return path


@contextmanager
def atomic_path(target: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target`, on error it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    try:
        os.fchmod(handle, umask_mode())
    finally:
        os.close(handle)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(target: Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return target


def save_figure_atomic(fig, target: Path) -> Path:
    """A matplotlib Figure saved as PNG, atomically."""
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return target
