"""Unreadable Parquet files: moved aside so that one bad session file never takes a table down.

A session's file can become unreadable outside datman-flow's own writes (those are atomic): a
disk that filled during a copy from backup, a restore cut short, a hand edit. DuckDB then fails
every query of the views that glob the file's folder. Nothing is checked while all is well;
when a query fails, `quarantine_after` looks at the file DuckDB's error names (or, if it names
none, at every file of the store), and each file that opens but does not read as Parquet is
moved to `<store>/_quarantine/<table>/<file name>.<UTC time>` (never deleted), with a warning
naming the file and its session. The caller then runs its query again. Re-ingesting the
session writes its file again; `quarantined_files` lists what was moved, for `datman-flow status`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from datman_flow.store.rows import CheckRow
from datman_flow.store.schema import TABLES, table_of

log = logging.getLogger(__name__)

QUARANTINE_DIR = "_quarantine"
PARTED_TABLES = frozenset({table_of(CheckRow)})  # <session>.<part>.parquet: one file per check
_NAMED_FILE = re.compile(r"""["']([^"'*?\n]+\.parquet)["']""")
# first lines of DuckDB errors that come from a file's bytes (a bad query names no such thing)
_FILE_TROUBLE = re.compile(r"parquet|magic bytes|footer|decompress|corrupt|thrift|read enough bytes", re.I)
_STAMP = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True)
class QuarantinedFile:
    table: str
    file_name: str  # the name it had in <store>/<table>/
    session: str  # '' for the table's schema file (written again on next use)
    path: Path  # where it is now
    quarantined_at: str  # UTC, as in the name
    replaced: bool  # the session has written the file again since


def session_of(table: str, file_name: str) -> str:
    """The session a file of <store>/<table>/ holds rows of ('' for `_schema.parquet`; a label
    unsafe as a file name shows as its hashed name, `x-<sha1>`)."""
    stem = file_name.removesuffix(".parquet")
    if stem.startswith("_"):
        return ""
    return stem.rsplit(".", 1)[0] if table in PARTED_TABLES and "." in stem else stem


def unreadable(path: Path) -> str | None:
    """Why `path` does not read as Parquet, or None if it reads (or cannot be opened at all:
    a missing file or one without read permission is not corrupt, and is left where it is)."""
    try:
        with open(path, "rb"):
            pass
    except OSError:
        return None
    try:
        with duckdb.connect() as con:
            con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    except duckdb.Error as exc:
        return str(exc).split("\n", 1)[0]
    return None


def _store_file(store_dir: Path, named: str) -> Path | None:
    """`named` if it is a Parquet file directly in one of the store's table folders."""
    path = Path(named)
    try:
        real, real_store = path.resolve(), store_dir.resolve()
    except OSError:
        return None
    if real.parent.parent != real_store or real.parent.name not in TABLES or not real.is_file():
        return None
    return real


def _all_files(store_dir: Path) -> list[Path]:
    return [path for table in TABLES for path in sorted((store_dir / table).glob("*.parquet"))]


def quarantine_file(store_dir: Path, path: Path) -> QuarantinedFile | None:
    """Move `path` into the quarantine if it does not read as Parquet. The file is moved first
    and checked where it landed, so that a good file a writer renamed into place meanwhile is
    put back (unless a newer one is there already), never lost."""
    reason = unreadable(path)
    if reason is None:
        return None
    table, name = path.parent.name, path.name
    now = datetime.now(UTC)
    target = store_dir / QUARANTINE_DIR / table / f"{name}.{now.strftime(_STAMP)}"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(path, target)
    except FileNotFoundError:  # another process moved (or replaced and moved) it first
        return None
    if unreadable(target) is None:
        try:
            os.link(target, path)
        except FileExistsError:
            pass  # a newer write is in place; this older good copy is superseded, as a rename would
        target.unlink()
        return None
    session = session_of(table, name)
    whose = f"session {session}" if session else "the table's schema file, written again"
    log.warning("metric store: %s (%s, table %s) is not a readable Parquet file (%s); moved to %s. "
                "The other sessions stay readable; re-ingest %s to write it again.",
                path, whose, table, reason, target, session or "nothing")
    return QuarantinedFile(table, name, session, target, now.strftime(_STAMP), False)


def quarantine_after(store_dir: Path, error: BaseException) -> list[QuarantinedFile]:
    """Quarantine the unreadable files behind a failed query: the file DuckDB's error names, or,
    when it names none but speaks of a file's bytes, any unreadable file of the store.
    [] means the error is not a bad file's: the caller raises it."""
    first_line = str(error).split("\n", 1)[0]
    named = [p for p in (_store_file(store_dir, m) for m in _NAMED_FILE.findall(first_line)) if p]
    if not named and not _FILE_TROUBLE.search(first_line):
        return []
    moved = [q for q in (quarantine_file(store_dir, p) for p in named) if q]
    if not moved and not named:
        moved = [q for q in (quarantine_file(store_dir, p) for p in _all_files(store_dir)) if q]
    return moved


def quarantined_files(store_dir: Path) -> list[QuarantinedFile]:
    """Everything in the quarantine, oldest first."""
    found = []
    for table in sorted(TABLES):
        for path in (store_dir / QUARANTINE_DIR / table).glob("*.parquet.*"):
            name, _, stamp = path.name.rpartition(".parquet.")
            file_name = f"{name}.parquet"
            found.append(QuarantinedFile(table, file_name, session_of(table, file_name), path, stamp,
                                         (store_dir / table / file_name).exists()))
    return sorted(found, key=lambda q: (q.quarantined_at, q.table, q.file_name))
