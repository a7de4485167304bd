"""Adding rows that are never replaced (the review tables): each table's rows get ids from one
counter per table, and a scanning session's file grows by a rewrite under its lock.

Two reviewers saving at once (two requests of the app, the app and an MRIQC report, two app
processes on one data folder) take turns on the session file's lock, so neither save is lost;
the counter's own lock keeps ids unique across the table. Each rewrite is atomic (a temporary
file renamed over the old one), so a reader sees the file before or after a save, never half.
A counter file that is missing or unreadable is rebuilt from the table's largest id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TypeVar

import duckdb

from datman_flow.atomic import write_text_atomic
from datman_flow.store.database import file_lock
from datman_flow.store.files import ensure_schema_files, read_session_rows, session_file_name, write_parquet
from datman_flow.store.schema import table_of

Row = TypeVar("Row")

IDS_DIR = "_ids"
LOCKS_DIR = "_locks"


def largest_id(store_dir: Path, table: str) -> int:
    pattern = str(store_dir / table / "*.parquet")
    with duckdb.connect() as con:
        found = con.execute("SELECT max(id) FROM read_parquet(?, union_by_name = true)", [pattern]).fetchone()
    return int(found[0] or 0) if found else 0


def take_ids(store_dir: Path, table: str, count: int) -> range:
    """`count` ids never given before in `table` (1, 2, ... as in a database's serial column)."""
    counter = store_dir / IDS_DIR / f"{table}.next"
    with file_lock(store_dir / IDS_DIR / f"{table}.lock", exclusive=True):
        try:
            first = int(counter.read_text().strip())
        except (OSError, ValueError):
            first = largest_id(store_dir, table) + 1
        first = max(first, 1)
        write_text_atomic(counter, f"{first + count}\n")
    return range(first, first + count)


def new_only(before: Sequence[Row], rows: Sequence[Row], unique: Callable[[Row], Hashable]) -> list[Row]:
    """`rows` whose key is neither in `before` nor in an earlier row of `rows`."""
    seen = {unique(row) for row in before}
    out = []
    for row in rows:
        key = unique(row)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def append_rows(store_dir: Path, row_type: type[Row], scan_session: str, rows: Sequence[Row],
                unique: Callable[[Row], Hashable] | None = None) -> list[Row]:
    """Add `rows` (their `id` is ignored: each gets the table's next id) to the scanning
    session's file of `row_type`'s table; return them with their ids. Nothing already there
    is changed. With `unique`, a row whose key is already in the file is not added again
    (checked under the file's lock: two callers registering the same picture add it once)."""
    rows = list(rows)
    wrong = [type(row).__name__ for row in rows if type(row) is not row_type]
    if wrong:
        raise TypeError(f"{table_of(row_type)} takes {row_type.__name__} rows, not {', '.join(sorted(set(wrong)))}")
    if not rows:
        return []
    ensure_schema_files(store_dir)
    table = table_of(row_type)
    name = session_file_name(scan_session)
    with file_lock(store_dir / LOCKS_DIR / table / f"{name}.lock", exclusive=True):
        before = read_session_rows(store_dir, row_type, scan_session)
        if unique is not None:
            rows = new_only(before, rows, unique)
            if not rows:
                return []
        ids = take_ids(store_dir, table, len(rows))
        added = [dataclasses.replace(row, id=new_id) for row, new_id in zip(rows, ids)]  # type: ignore[type-var]
        write_parquet(store_dir / table / name, table, [*before, *added])
    return added
