"""Which sessions' reviews changed since the last look (the `review_changes` sensor): the
folders of the review tables that reviewers change (ratings, clicks, sign-offs, series
decisions) are listed (names, inodes and modification times: `os.scandir`, a few milliseconds
for 2,000 files per folder), and each file newer than the cursor names its session.

The cursor is the largest modification time seen (nanoseconds) and the files seen at exactly
that time (table/name:inode; every save renames a new file over the old one, so a save within
the same clock tick as the last one still shows as a new inode). A file that appears with an
older time than the cursor (copied back with its times kept) is not noticed: re-run its session.

Only names that parse as session labels count; anything else in the folders (a hashed name, a
file a person dropped there) is named as ignored and never asked about again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datman_flow.naming import InvalidLabel, parse_session_label
from datman_flow.store.review_rows import RatingCoordinateRow, RatingRow, SeriesDecisionRow, SignOffRow
from datman_flow.store.schema import table_of
from datman_flow.store.table_cache import listing

WATCHED = tuple(table_of(row) for row in (RatingRow, RatingCoordinateRow, SignOffRow, SeriesDecisionRow))
SUFFIX = ".parquet"
MAX_SESSIONS = 200  # sessions asked about per look; the rest on the next (the first look over an old store)
MAX_SEEN = 100_000  # file keys kept at one time in the cursor (a cursor from elsewhere cannot grow without end)


@dataclass(frozen=True)
class ReviewFile:
    table: str
    name: str
    inode: int
    mtime_ns: int

    @property
    def key(self) -> str:
        return f"{self.table}/{self.name}:{self.inode}"


@dataclass(frozen=True)
class ReviewCursor:
    mtime_ns: int = -1  # -1: nothing seen yet
    at_mtime: frozenset[str] = frozenset()

    def to_json(self) -> str:
        return json.dumps({"mtime_ns": self.mtime_ns, "at_mtime": sorted(self.at_mtime)})

    @classmethod
    def from_json(cls, text: str | None) -> ReviewCursor:
        """The cursor a sensor stored; anything unreadable is an empty cursor (every session is
        looked at again: re-evaluating a review is harmless)."""
        try:
            raw = json.loads(text or "{}")
            mtime, seen = raw.get("mtime_ns", -1), raw.get("at_mtime", [])
            if isinstance(mtime, int) and not isinstance(mtime, bool) and isinstance(seen, list) and \
                    len(seen) <= MAX_SEEN and all(isinstance(k, str) for k in seen):
                return cls(mtime, frozenset(seen))
        except (ValueError, AttributeError):
            pass
        return cls()


@dataclass(frozen=True)
class ReviewChanges:
    changed: dict[str, int] = field(default_factory=dict)  # session label -> newest mtime_ns of its changed files
    ignored: tuple[str, ...] = ()  # changed files whose names are not session labels (table/name)
    cursor: ReviewCursor = ReviewCursor()
    more: bool = False  # more sessions changed than one look takes: the rest on the next


def review_files(store_dir: Path, tables: Sequence[str] = WATCHED) -> list[ReviewFile]:
    """The Parquet files of the review tables' folders (missing folders: none)."""
    return [ReviewFile(table, name, inode, mtime) for table in tables
            for name, (inode, _size, mtime) in listing(Path(store_dir) / table).items()]


def label_of(file_name: str) -> str | None:
    """The session label a table file is named for, or None when the name is not one."""
    if not file_name.endswith(SUFFIX):
        return None
    stem = file_name[:-len(SUFFIX)]
    try:
        parse_session_label(stem)
    except InvalidLabel:
        return None
    return stem


def is_new(f: ReviewFile, cursor: ReviewCursor) -> bool:
    return f.mtime_ns > cursor.mtime_ns or (f.mtime_ns == cursor.mtime_ns and f.key not in cursor.at_mtime)


def changes_since(files: Sequence[ReviewFile], cursor: ReviewCursor, limit: int = MAX_SESSIONS) -> ReviewChanges:
    """The sessions whose files changed since `cursor` (oldest change first, at most `limit`
    sessions), and the cursor after them."""
    fresh = sorted((f for f in files if is_new(f, cursor)), key=lambda f: (f.mtime_ns, f.key))
    changed: dict[str, int] = {}
    ignored, taken, more = [], [], False
    for f in fresh:
        label = label_of(f.name)
        if label is not None and label not in changed and len(changed) >= limit:
            more = True
            break
        taken.append(f)
        if label is None:
            ignored.append(f"{f.table}/{f.name}")
        else:
            changed[label] = max(changed.get(label, -1), f.mtime_ns)
    if not taken:
        return ReviewChanges(cursor=cursor)
    top = taken[-1].mtime_ns
    at_top = {f.key for f in taken if f.mtime_ns == top} | (set(cursor.at_mtime) if top == cursor.mtime_ns else set())
    return ReviewChanges(changed, tuple(ignored), ReviewCursor(top, frozenset(at_top)), more)
