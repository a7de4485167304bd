"""Many sessions' rows of one table written at once, for building large stores (the review
benchmark, tests): the same files as one `MetricStore.replace` per session (`<table>/<session
label>[.<part>].parquet`, the table's columns and types), made through one DuckDB connection.

Why not `replace` in a loop: each call opens a DuckDB connection (tens of milliseconds, about
50 ms on a busy 2-core machine) and binds the rows one parameter at a time (about 10,000 rows a
second); a store of 2,000 sessions has some 20,000 files and 300,000 rows, half an hour that
way. Here the rows go in as one newline-delimited JSON file read with the table's column types,
and each session's file is copied out of that one table (a few milliseconds each).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import duckdb

from datman_flow.atomic import atomic_path
from datman_flow.store.files import ensure_schema_files, row_values, session_file_name
from datman_flow.store.schema import TABLES, columns, create_table_sql, table_of

Row = TypeVar("Row")


def session_column(table: str) -> str:
    """The column naming a row's scanning session: `scan_session` in the review tables (where
    `session` is a rating session's id), else `session`."""
    names = columns(table)
    return "scan_session" if "scan_session" in names else "session"


def json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    raise TypeError(f"a {type(value).__name__} is no column value")


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def replace_sessions(store_dir: Path, row_type: type[Row], rows: Iterable[Row], part: str | None = None) -> int:
    """Replace, for every session that has rows in `rows`, its file of `row_type`'s table (or of
    that part of it) with those rows, in their order; other sessions' files are left alone.
    Returns the number of files written. TypeError for a row of another type, ValueError for a
    value that JSON cannot carry exactly (NaN, infinity)."""
    store_dir = Path(store_dir)
    table = table_of(row_type)
    rows = list(rows)
    wrong = [type(row).__name__ for row in rows if type(row) is not row_type]
    if wrong:
        raise TypeError(f"{table} takes {row_type.__name__} rows, not {', '.join(sorted(set(wrong)))}")
    if not rows:
        return 0
    ensure_schema_files(store_dir)
    names, key = columns(table), session_column(table)
    sessions = list(dict.fromkeys(str(getattr(row, key)) for row in rows))
    types = "{" + ", ".join(f"{sql_text(name)}: {sql_text(kind)}" for name, kind in TABLES[table]) + "}"
    with tempfile.TemporaryDirectory(prefix=".bulk-", dir=store_dir) as work, duckdb.connect() as con:
        source = Path(work) / "rows.jsonl"
        with open(source, "w", encoding="utf-8") as out:
            for row in rows:
                values = row_values(row, names)
                if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                    raise ValueError(f"{table}: a row of session {getattr(row, key)!r} has a value that is not finite")
                out.write(json.dumps(dict(zip(names, values)), default=json_value, allow_nan=False) + "\n")
        con.execute(create_table_sql(table, "t"))
        con.execute(f"INSERT INTO t SELECT * FROM read_json({sql_text(str(source))}, "
                    f"format = 'newline_delimited', columns = {types})")
        for session in sessions:
            target = store_dir / table / session_file_name(session, part)
            with atomic_path(target) as tmp:
                con.execute(f'COPY (SELECT * FROM t WHERE "{key}" = {sql_text(session)}) '
                            f"TO {sql_text(str(tmp))} (FORMAT parquet)")
    return len(sessions)
