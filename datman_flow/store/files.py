"""Writing a session's rows: one Parquet file per table and session, replaced atomically.

DuckDB allows one writing process per database file, and several sessions are ingested at
once. So no run ever writes to metrics.duckdb: each run writes its own Parquet files (to a
temporary name, then renamed over the previous ones), and metrics.duckdb holds only views
that read them all. Re-running a session replaces its files: rows are never duplicated.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb

from datman_flow.atomic import atomic_path
from datman_flow.store.schema import TABLES, columns, create_table_sql

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,150}$")
SCHEMA_FILE = "_schema.parquet"


def session_file_name(session: str, part: str | None = None) -> str:
    """The file name for a session's rows (labels unsafe as names are hashed); `part` splits a
    table whose rows come from several steps (check_results: one file per check)."""
    stem = session if SAFE_NAME.match(session) else f"x-{hashlib.sha1(session.encode()).hexdigest()}"
    return f"{stem}.{part}.parquet" if part else f"{stem}.parquet"


def write_parquet(path: Path, table: str, rows: Iterable[Mapping[str, object]]) -> None:
    names = columns(table)
    with atomic_path(path) as tmp, duckdb.connect() as con:
        con.execute(create_table_sql(table, "t"))
        values = [[row.get(name) for name in names] for row in rows]
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


def replace_session_rows(store_dir: Path, table: str, session: str, rows: Iterable[Mapping[str, object]],
                         part: str | None = None) -> Path:
    """Replace everything `session` has in `table` (or in that part of it) with `rows`, all or nothing."""
    ensure_schema_files(store_dir)
    target = store_dir / table / session_file_name(session, part)
    rows = list(rows)
    if not rows:
        target.unlink(missing_ok=True)
        return target
    write_parquet(target, table, rows)
    return target


def read_session_rows(store_dir: Path, table: str, session: str) -> list[dict[str, object]]:
    """What `session` has in `table` (one file; parts are not read), or [] when it has nothing."""
    source = store_dir / table / session_file_name(session)
    if not source.exists():
        return []
    with duckdb.connect() as con:
        cursor = con.execute("SELECT * FROM read_parquet(?)", [str(source)])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
