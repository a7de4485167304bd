"""Writing a session's rows: one Parquet file per table and session, replaced atomically.

DuckDB allows one writing process per database file, and several sessions are ingested at
once. So no run ever writes to metrics.duckdb: each run writes its own Parquet files (to a
temporary name, then renamed over the previous ones), and metrics.duckdb holds only views
that read them all. Re-running a session replaces its files: rows are never duplicated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import duckdb

from datman_flow.atomic import atomic_path
from datman_flow.store.quarantine import quarantine_file
from datman_flow.store.schema import TABLES, columns, create_table_sql, table_of

Row = TypeVar("Row")

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,150}$")
SCHEMA_FILE = "_schema.parquet"


def session_file_name(session: str, part: str | None = None) -> str:
    """The file name for a session's rows (labels unsafe as names are hashed); `part` splits a
    table whose rows come from several steps (check_results: one file per check)."""
    stem = session if SAFE_NAME.match(session) else f"x-{hashlib.sha1(session.encode()).hexdigest()}"
    return f"{stem}.{part}.parquet" if part else f"{stem}.parquet"


def row_values(row: object, names: list[str]) -> list[object]:
    """A row's values in column order (tuples as lists: DuckDB reads a tuple as a STRUCT)."""
    values = [getattr(row, name) for name in names]
    return [list(v) if isinstance(v, tuple) else v for v in values]


def write_parquet(path: Path, table: str, rows: Iterable[object]) -> None:
    names = columns(table)
    with atomic_path(path) as tmp, duckdb.connect() as con:
        con.execute(create_table_sql(table, "t"))
        values = [row_values(row, names) for row in rows]
        if values:
            marks = ", ".join("?" for _ in names)
            con.executemany(f"INSERT INTO t VALUES ({marks})", values)
        quoted = str(tmp).replace("'", "''")
        con.execute(f"COPY t TO '{quoted}' (FORMAT parquet)")


def ensure_schema_files(store_dir: Path) -> None:
    """A zero-row file per table, so that views work (and have types) before any session."""
    for table in TABLES:
        target = store_dir / table / SCHEMA_FILE
        if not target.exists():
            write_parquet(target, table, [])


def replace_session_rows(store_dir: Path, row_type: type[Row], session: str, rows: Iterable[Row],
                         part: str | None = None) -> Path:
    """Replace everything `session` has in `row_type`'s table (or in that part of it) with
    `rows`, all or nothing. Every row must be a `row_type` (TypeError otherwise)."""
    ensure_schema_files(store_dir)
    table = table_of(row_type)
    target = store_dir / table / session_file_name(session, part)
    rows = list(rows)
    wrong = [type(row).__name__ for row in rows if type(row) is not row_type]
    if wrong:
        raise TypeError(f"{table} takes {row_type.__name__} rows, not {', '.join(sorted(set(wrong)))}")
    if not rows:
        target.unlink(missing_ok=True)
        return target
    write_parquet(target, table, rows)
    return target


def read_session_rows(store_dir: Path, row_type: type[Row], session: str, part: str | None = None) -> list[Row]:
    """What `session` has in `row_type`'s table (one file: the session's, or one part of it), or
    [] when it has nothing (or its file was unreadable, and is now quarantined). A column that an
    older file lacks reads as None."""
    source = store_dir / table_of(row_type) / session_file_name(session, part)
    if not source.exists():
        return []
    try:
        with duckdb.connect() as con:
            cursor = con.execute("SELECT * FROM read_parquet(?)", [str(source)])
            names = [d[0] for d in cursor.description]
            found = [dict(zip(names, row)) for row in cursor.fetchall()]
    except duckdb.Error:
        if not source.exists():
            return []  # removed by another process since: the session has no rows there now
        if quarantine_file(store_dir, source) is None:
            raise
        return []
    return [make_row(row_type, row) for row in found]


def make_row(row_type: type[Row], values: Mapping[str, object]) -> Row:
    """A typed row from a mapping of column -> value (lists back to tuples; a value the views
    typed, such as an INTEGER series number or a DATE, back to the text the row keeps)."""
    kwargs = {}
    text_fields = {name for name, kind in TABLES[table_of(row_type)] if kind == "VARCHAR"}
    for f in dataclasses.fields(row_type):  # type: ignore[arg-type]
        value = values.get(f.name)
        if isinstance(value, list):
            value = tuple(value)
        elif f.name in text_fields and value is not None and not isinstance(value, str):
            value = str(value)
        kwargs[f.name] = value
    return row_type(**kwargs)
