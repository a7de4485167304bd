"""One table's rows kept in memory by a long-running reader (the review app), brought up to date
on each call by reading again only the files that changed since the last call.

A query over a table's views reads every file of its folder: with 2,000 sessions that is about
a second, too slow for a page a reviewer opens a hundred times a day. A `TableCache` lists the
folder (names, sizes, modification times: a few milliseconds), reads the files that are new or
changed, and forgets the ones removed; the first call reads them all in one query. A file that
does not read as Parquet is quarantined (quarantine.py) and its rows are left out.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import duckdb

from datman_flow.store.files import SCHEMA_FILE, make_row
from datman_flow.store.read_again import ReadAgain
from datman_flow.store.schema import table_of

Row = TypeVar("Row")
Signature = tuple[int, int, int]  # inode, size, mtime_ns


def listing(folder: Path) -> dict[str, Signature]:
    """The Parquet files of `folder` (not the schema file, nor temporary files) by name."""
    found: dict[str, Signature] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name.endswith(".parquet") and not entry.name.startswith((".", "_")) and entry.name != SCHEMA_FILE:
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            found[entry.name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


def read_files(paths: list[Path]) -> dict[str, list[dict[str, object]]]:
    """Rows of each file, by file name, in one query."""
    if not paths:
        return {}
    with duckdb.connect() as con:
        cursor = con.execute("SELECT * FROM read_parquet(?, union_by_name = true, filename = true)",
                             [[str(p) for p in paths]])
        names = [d[0] for d in cursor.description]
        out: dict[str, list[dict[str, object]]] = {p.name: [] for p in paths}
        for values in cursor.fetchall():
            row = dict(zip(names, values))
            out.setdefault(Path(str(row.pop("filename"))).name, []).append(row)
    return out


class TableCache(Generic[Row]):
    """`cache.rows()`: every row of `row_type`'s table, as of now. Safe to share between the
    threads of one process."""

    def __init__(self, store_dir: Path, row_type: type[Row]) -> None:
        self.store_dir, self.row_type = Path(store_dir), row_type
        self.folder = self.store_dir / table_of(row_type)
        self._lock = threading.Lock()
        self._seen: dict[str, Signature] = {}
        self._rows: dict[str, list[Row]] = {}
        self._version = 0

    @property
    def version(self) -> int:
        """Grows each time a call found the table changed (for caches built on this one)."""
        return self._version

    def refresh(self) -> bool:
        """Read what changed; whether anything did."""
        with self._lock:
            now = listing(self.folder)
            changed = [name for name, sig in now.items() if self._seen.get(name) != sig]
            gone = [name for name in self._seen if name not in now]
            if not changed and not gone:
                return False
            for name in gone:
                self._seen.pop(name, None)
                self._rows.pop(name, None)
            fresh = self._read([self.folder / name for name in changed])
            for name in changed:
                self._seen[name] = now[name]
                self._rows[name] = [make_row(self.row_type, values) for values in fresh.get(name, [])]
            self._version += 1
            return True

    def _read(self, paths: list[Path]) -> dict[str, list[dict[str, object]]]:
        again = ReadAgain(self.store_dir)
        while True:
            try:
                return read_files([p for p in paths if p.exists()])
            except duckdb.Error as exc:
                if not again(exc):
                    raise

    def by_file(self) -> dict[str, tuple[Signature, list[Row]]]:
        """Each file's signature and rows, by file name (`<session>.parquet`): a reader that
        derives something per session recomputes it only for the files whose signature changed."""
        self.refresh()
        with self._lock:
            return {name: (self._seen[name], self._rows[name]) for name in self._rows}

    def rows(self, where: Callable[[Row], bool] | None = None) -> list[Row]:
        self.refresh()
        with self._lock:
            every = [row for rows in self._rows.values() for row in rows]
        return every if where is None else [row for row in every if where(row)]
