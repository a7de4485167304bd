"""Writing a planned BIDS session folder into a dataset, whole or not at all, and the dataset's
ledger (what datman-flow wrote there, so that a re-export touches only what changed).

A visit's folder is built beside the dataset's subjects in a hidden folder, then swapped in with
two renames: a reader (or the BIDS validator) never sees half a session, and an interrupted
export leaves the previous release whole (its leftovers are removed by the next export). NIfTI,
bval and bvec files are hard links to the converted series (a copy where the file system refuses
a link); sidecars are written. Nothing is removed but the folders the ledger says datman-flow
wrote, and only inside the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from datman_flow.atomic import umask_mode, write_text_atomic
from datman_flow.export.bids_plan import PlannedFile
from datman_flow.safe_paths import inside, remove_tree

LEDGER = "code/datman-flow/export.json"
VISIT_FOLDER = re.compile(r"sub-[A-Za-z0-9]+/ses-[A-Za-z0-9]+")
BUILD_PREFIX = ".datman-flow-build-"


def fingerprint(files: Iterable[PlannedFile]) -> str:
    """What the folder's content depends on: each target with its source file's identity (inode,
    size, modification time) or its text; equal fingerprints mean an identical folder."""
    digest = hashlib.sha256()
    for planned in sorted(files, key=lambda f: f.path):
        digest.update(planned.path.encode())
        if planned.source is not None:
            stat = planned.source.stat()
            digest.update(f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            digest.update(hashlib.sha256((planned.text or "").encode()).digest())
    return digest.hexdigest()


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links refused: a copy
        shutil.copy2(source, target)
        os.chmod(target, umask_mode())


@dataclass(frozen=True)
class Ledger:
    """What datman-flow wrote into a dataset: per visit folder, its fingerprint and record."""

    path: Path
    visits: dict[str, dict]

    @classmethod
    def read(cls, dataset: Path) -> Ledger:
        path = dataset / LEDGER
        try:
            data = json.loads(path.read_text())
            visits = data.get("visits", {}) if isinstance(data, dict) else {}
        except FileNotFoundError:
            visits = {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: unreadable export ledger ({exc}); move it away to export afresh") from None
        bad = sorted(k for k in visits if not isinstance(k, str) or not VISIT_FOLDER.fullmatch(k))
        if bad:
            raise ValueError(f"{path}: the export ledger names {bad[0]!r}, which is not a visit folder "
                             "(sub-<label>/ses-<label>): refused; move the ledger away to export afresh")
        return cls(path, {k: v for k, v in visits.items() if isinstance(v, dict)})

    def save(self) -> None:
        write_text_atomic(self.path, json.dumps({"visits": self.visits}, indent=2, sort_keys=True) + "\n")


def clear_builds(dataset: Path) -> None:
    """Leftovers of an interrupted export (hidden build folders) removed."""
    if dataset.is_dir():
        for entry in dataset.iterdir():
            if entry.name.startswith(BUILD_PREFIX):
                remove_tree(entry, dataset)


def write_folder(dataset: Path, folder: str, files: Iterable[PlannedFile]) -> None:
    """`dataset/folder` replaced by exactly `files` (paths relative to the dataset, under folder)."""
    dataset.mkdir(parents=True, exist_ok=True)
    build = dataset / f"{BUILD_PREFIX}{uuid.uuid4().hex}"
    build.mkdir()
    try:
        for planned in files:
            relative = Path(planned.path).relative_to(folder)
            target = build / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if planned.source is not None:
                link_or_copy(planned.source, target)
            else:
                target.write_text(planned.text or "")
        final = dataset / folder
        final.parent.mkdir(parents=True, exist_ok=True)
        inside(final, dataset)
        old = None
        if final.exists():
            old = dataset / f"{BUILD_PREFIX}old-{uuid.uuid4().hex}"
            os.rename(final, old)
        os.rename(build, final)
        if old is not None:
            remove_tree(old, dataset)
    finally:
        if build.exists():
            remove_tree(build, dataset)


def remove_folder(dataset: Path, folder: str) -> bool:
    """A visit folder datman-flow wrote, removed (its participant's folder too once empty)."""
    target = dataset / folder
    removed = remove_tree(target, dataset)
    parent = target.parent
    if parent != dataset and parent.is_dir() and not any(p for p in parent.iterdir() if p.is_dir()):
        remove_tree(parent, dataset)
    return removed
