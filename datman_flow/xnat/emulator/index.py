"""The XNAT emulator's view of its data folder: projects, sessions, scans and files.

Layout: `DATA/<project>/<session label>/**`. DICOM files may sit at any depth; anything
pydicom cannot read as DICOM (no `DICM` preamble, unreadable, or no SeriesInstanceUID)
is ignored, as XNAT's receiver does.

Rules (mirroring what XNAT shows after archiving):
- scans are the files grouped by SeriesInstanceUID; the scan ID is the SeriesNumber as a
  string. When two series of one session share a SeriesNumber N, the one whose
  SeriesInstanceUID sorts first keeps `N`, later ones get `N-2`, `N-3`, ... A series
  without a SeriesNumber is treated as number 0.
- experiment IDs (`XNAT_E00001`, ...) are assigned in order of discovery (projects and
  labels sorted) and stay stable for the life of the index; `insert_date` is the time the
  index first saw the session folder.
- a file's name in a scan is its basename; files of one scan sharing a basename are named
  by their path relative to the session folder with '/' replaced by '_'.

Session folders are re-listed on every experiments request (cheap); a session's headers are
read lazily and cached per file (keyed by size and mtime), so files added later are picked
up and unchanged ones are never read twice (dicom_header.py reads only the four needed
tags). Each request re-walks the session folder (stat only); when no file's name, size or
mtime changed since the last walk, the scans built then are answered again as they are.
MD5 digests are computed on first demand and cached per (path, size, mtime).
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .dicom_header import Header, read_header

_Listing = list[tuple[str, int, int]]  # (relative posix path, size, mtime_ns), sorted


@dataclass(frozen=True)
class FileEntry:
    name: str
    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanEntry:
    id: str
    series_uid: str
    description: str
    files: tuple[FileEntry, ...]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class SessionEntry:
    id: str
    project: str
    label: str
    folder: Path
    insert_date: str
    date: str | None = None
    headers: dict[str, tuple[int, int, Header | None]] = field(default_factory=dict)
    listing: _Listing | None = None  # the walk the scans below were built from
    built: list[ScanEntry] = field(default_factory=list)


def _xnat_date(study_date: str) -> str:
    s = study_date.strip()
    return f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 and s.isdigit() else ""


def _now_string() -> str:
    now = datetime.now()
    return now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"


def _walk_files(folder: Path) -> _Listing:
    """(relative posix path, size, mtime_ns) of every regular file under folder, sorted."""
    found: _Listing = []
    stack = [(str(folder), "")]
    while stack:
        current, rel_dir = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    stack.append((entry.path, rel_dir + name + "/"))
                elif entry.is_file(follow_symlinks=True):
                    st = entry.stat()
                    found.append((rel_dir + name, st.st_size, st.st_mtime_ns))
            except OSError:  # vanished (or a dangling link) between listing and stat
                continue
    found.sort()
    return found


class EmulatorIndex:
    """Thread-safe, lazily built index of the emulator's data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir)
        self._lock = threading.RLock()
        self._sessions: dict[tuple[str, str], SessionEntry] = {}
        self._by_id: dict[str, SessionEntry] = {}
        self._digests: dict[tuple[Path, int, int], str] = {}
        self._resource_ids: dict[tuple[str, str], int] = {}

    def projects(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def experiments(self, project: str | None = None) -> list[SessionEntry]:
        """Sessions present on disk now (of one project, or all), in ID order."""
        with self._lock:
            present = self._refresh()
            return [s for s in present if project is None or s.project == project]

    def experiment(self, key: str, project: str | None = None) -> SessionEntry | None:
        """Find a session by ID, or by label within a project."""
        for s in self.experiments(project):
            if s.id == key or (project is not None and s.label == key):
                return s
        return None

    def _refresh(self) -> list[SessionEntry]:
        present = []
        for project in self.projects():
            labels = sorted(p.name for p in (self.root / project).iterdir()
                            if p.is_dir() and not p.name.startswith("."))
            for label in labels:
                entry = self._sessions.get((project, label))
                if entry is None:
                    entry = SessionEntry(id=f"XNAT_E{len(self._sessions) + 1:05d}", project=project,
                                         label=label, folder=self.root / project / label,
                                         insert_date=_now_string())
                    self._sessions[(project, label)] = entry
                    self._by_id[entry.id] = entry
                present.append(entry)
        return sorted(present, key=lambda s: s.id)

    def last_modified(self, session: SessionEntry) -> str:
        """XNAT's `last_modified` of a session: when a scan folder was last added, removed or
        changed (the newest mtime of the session folder and its sub-folders; folders only, so
        a listing stays cheap), never before the session's `insert_date`."""
        newest = 0.0
        stack = [str(session.folder)]
        while stack:
            current = stack.pop()
            try:
                newest = max(newest, os.stat(current).st_mtime)
                stack += [e.path for e in os.scandir(current) if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
        changed = datetime.fromtimestamp(newest)
        text = changed.strftime("%Y-%m-%d %H:%M:%S.") + f"{changed.microsecond // 1000:03d}"
        return max(text, session.insert_date)

    def session_date(self, session: SessionEntry) -> str:
        """StudyDate (YYYY-MM-DD) of the first DICOM file found, '' if none has one."""
        with self._lock:
            if session.date is None:
                session.date = ""
                for rel, _, _ in _walk_files(session.folder):
                    header = read_header(session.folder / rel)
                    if header is not None and header.study_date:
                        session.date = _xnat_date(header.study_date)
                        break
            return session.date

    def scans(self, session: SessionEntry) -> list[ScanEntry]:
        """The session's scans, built from the (cached) headers of its current files."""
        with self._lock:
            files = _walk_files(session.folder)
            if files == session.listing:
                return list(session.built)
            cache = session.headers
            for rel, size, mtime_ns in files:
                cached = cache.get(rel)
                if cached is None or cached[:2] != (size, mtime_ns):
                    cache[rel] = (size, mtime_ns, read_header(session.folder / rel))
            for rel in set(cache) - {rel for rel, _, _ in files}:
                del cache[rel]
            session.built = self._group(session, files)
            session.listing = files
            return list(session.built)

    def scan(self, session: SessionEntry, scan_id: str) -> ScanEntry | None:
        return next((s for s in self.scans(session) if s.id == scan_id), None)

    def _group(self, session: SessionEntry, files: _Listing) -> list[ScanEntry]:
        by_uid: dict[str, list[tuple[str, int, int, Header]]] = {}
        for rel, size, mtime_ns in files:
            header = session.headers[rel][2]
            if header is not None:
                by_uid.setdefault(header.series_uid, []).append((rel, size, mtime_ns, header))
        taken: dict[str, int] = {}
        scans = []
        for uid in sorted(by_uid):
            members = by_uid[uid]
            number = members[0][3].series_number
            taken[number] = taken.get(number, 0) + 1
            scan_id = number if taken[number] == 1 else f"{number}-{taken[number]}"
            basenames = [rel.rsplit("/", 1)[-1] for rel, _, _, _ in members]
            counts = Counter(basenames)
            entries = []
            for (rel, size, mtime_ns, _), base in zip(members, basenames):
                name = base if counts[base] == 1 else rel.replace("/", "_")
                entries.append(FileEntry(name, session.folder / rel, size, mtime_ns))
            entries.sort(key=lambda f: f.name)
            scans.append(ScanEntry(scan_id, uid, members[0][3].description, tuple(entries)))
        return sorted(scans, key=_scan_order)

    def resource_id(self, session: SessionEntry, scan_id: str) -> int:
        with self._lock:
            key = (session.id, scan_id)
            if key not in self._resource_ids:
                self._resource_ids[key] = len(self._resource_ids) + 1
            return self._resource_ids[key]

    def digest(self, f: FileEntry) -> str:
        """MD5 hex of a file's content, computed once per (path, size, mtime)."""
        key = (f.path, f.size, f.mtime_ns)
        with self._lock:
            cached = self._digests.get(key)
        if cached is not None:
            return cached
        with open(f.path, "rb") as fh:
            value = hashlib.file_digest(fh, "md5").hexdigest()
        with self._lock:
            self._digests[key] = value
        return value


def _scan_order(scan: ScanEntry) -> tuple[int, str, int]:
    number, _, suffix = scan.id.partition("-")
    return (int(number) if number.isdigit() else 1 << 30, number, int(suffix or 1))
