"""metrics.duckdb: views over the per-session Parquet files, and read queries.

The views name the Parquet folders by absolute path (DuckDB resolves relative paths against
the reader's working directory, not the database file). If the data folder moves, the next
`open_store` rewrites them. Writing the views is the only write to metrics.duckdb; it is
rare (first use, new table, moved folder) and serialised by a lock file.

A query that fails on an unreadable Parquet file moves that file into the quarantine
(quarantine.py) and runs again: one bad file costs its session's rows, not the table.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from datman_flow.store.files import ensure_schema_files
from datman_flow.store.read_again import ReadAgain
from datman_flow.store.schema import DERIVED_VIEWS, TABLES, typed_select

LOCK_WAIT_SECONDS = 60.0
VERSION_VIEW = "_datman_views"  # holds a digest of every view's SQL: a changed definition is rewritten


def view_sql(store_dir: Path, table: str) -> str:
    pattern = str((store_dir / table).resolve() / "*.parquet").replace("'", "''")
    source = f"read_parquet('{pattern}', union_by_name = true)"
    return f'CREATE OR REPLACE VIEW "{table}" AS {typed_select(table, source)}'


def all_view_sql(store_dir: Path) -> list[str]:
    """Every view: one per table, then the views over them, then the version view."""
    statements = [view_sql(store_dir, table) for table in TABLES]
    statements += [f'CREATE OR REPLACE VIEW "{name}" AS {sql}' for name, sql in DERIVED_VIEWS.items()]
    digest = hashlib.sha256("\n".join(statements).encode()).hexdigest()[:16]
    return [*statements, f"CREATE OR REPLACE VIEW {VERSION_VIEW} AS SELECT '{digest}' AS digest"]


@contextmanager
def file_lock(path: Path, exclusive: bool) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def connect_retrying(db_path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Another program (a lab member's duckdb shell) may hold the file for a moment."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def views_current(db_path: Path, statements: list[str]) -> bool:
    """The views of metrics.duckdb are the ones `statements` make (the version view's digest)."""
    if not db_path.exists():
        return False
    with connect_retrying(db_path, read_only=True) as con:
        found = dict(con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall())
    digest = statements[-1].rsplit("'", 2)[1]
    return f"'{digest}'" in found.get(VERSION_VIEW, "")


def ensure_views(db_path: Path, store_dir: Path) -> None:
    ensure_schema_files(store_dir)
    lock = db_path.with_name(f".{db_path.name}.lock")
    statements = all_view_sql(store_dir)
    with file_lock(lock, exclusive=True):
        if views_current(db_path, statements):
            return
        with connect_retrying(db_path, read_only=False) as con:
            for statement in statements:
                con.execute(statement)


@contextmanager
def open_store(db_path: Path, store_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to metrics.duckdb with current views."""
    ensure_views(db_path, store_dir)
    lock = db_path.with_name(f".{db_path.name}.lock")
    with file_lock(lock, exclusive=False):
        con = connect_retrying(db_path, read_only=True)
    try:
        yield con
    finally:
        con.close()


def query(db_path: Path, store_dir: Path, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
    """Rows as dicts. An unreadable Parquet file is quarantined, and a session's file removed by
    another process during the query is passed over, by running the query again (read_again.py)."""
    again = ReadAgain(store_dir)
    while True:
        try:
            with open_store(db_path, store_dir) as con:
                cursor = con.execute(sql, list(params))
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
        except duckdb.Error as exc:
            if not again(exc):
                raise
