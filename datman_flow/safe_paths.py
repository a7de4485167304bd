"""Names from outside (XNAT IDs, file names, labels) as path components, and removals that can
never leave the folder they belong to. A leaf: it imports nothing of the project.

Every value that comes from an XNAT server or a file and becomes part of a path goes through
`safe_component` (refuse) first; every `rmtree` of the pipeline goes through `remove_tree`,
which refuses a target outside the given root (the session's own folder), a symlink, or the
root itself.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

# letters, digits and . _ + - ; starts with a letter or digit (so never '.', '..' or hidden)
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class UnsafePath(ValueError):
    """A name from outside that cannot be a path component, or a path outside its root."""


def is_safe_component(name: object) -> bool:
    return isinstance(name, str) and _SAFE.fullmatch(name) is not None


def safe_component(name: object, what: str) -> str:
    """`name` unchanged when it is a harmless single path component, else UnsafePath naming
    `what` it is (e.g. "XNAT scan ID") and why."""
    if is_safe_component(name):
        return str(name)
    raise UnsafePath(f"{what} {name!r} cannot be used as a folder or file name (only letters, digits and "
                     f"'._+-', starting with a letter or digit, at most 128 characters)")


def inside(path: Path, root: Path) -> Path:
    """`path`, absolute, after checking that it lies strictly inside `root` (symlinks resolved)."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real == real_root or not real.is_relative_to(real_root):
        raise UnsafePath(f"{path} is not inside {root}: refused")
    return real


def remove_tree(path: Path, root: Path) -> bool:
    """Remove the folder (or file) `path` if it exists and lies strictly inside `root`; a
    symlink is removed as a link, never followed. Returns whether something was removed."""
    path = Path(path)
    if path.is_symlink():
        parent, real_root = Path(os.path.realpath(path.parent)), Path(os.path.realpath(root))
        if not parent.is_relative_to(real_root):
            raise UnsafePath(f"{path} is not inside {root}: refused")
        path.unlink()
        return True
    if not path.exists():
        return False
    inside(path, root)
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    return True
