"""The handle every caller uses: where metrics.duckdb and the Parquet folders are, and the
three things done with them (replace a session's rows, read them back, query the views), and
the files that were moved aside as unreadable."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from datman_flow.store.append import append_rows
from datman_flow.store.database import query
from datman_flow.store.files import read_session_rows, replace_session_rows
from datman_flow.store.quarantine import QuarantinedFile, quarantined_files

Row = TypeVar("Row")

DB_NAME = "metrics.duckdb"
PARQUET_DIR = "store"


@dataclass(frozen=True)
class MetricStore:
    db_path: Path  # metrics.duckdb: views only
    parquet_dir: Path  # <table>/<session>.parquet

    @classmethod
    def under(cls, data_dir: Path) -> MetricStore:
        """The store of a data folder: <data>/metrics.duckdb and <data>/store/."""
        return cls(data_dir / DB_NAME, data_dir / PARQUET_DIR)

    @property
    def exists(self) -> bool:
        """Something was ever recorded here. Reading a store makes its folders (the schema
        files and views), so a read-only command asks this first, to create nothing."""
        return self.parquet_dir.is_dir()

    def replace(self, row_type: type[Row], session: str, rows: Iterable[Row], part: str | None = None) -> Path:
        """Replace the session's rows of one table (or of one part of it) with `rows`."""
        return replace_session_rows(self.parquet_dir, row_type, session, rows, part=part)

    def append(self, row_type: type[Row], scan_session: str, rows: Sequence[Row],
               unique: Callable[[Row], Hashable] | None = None) -> list[Row]:
        """Add rows that are never replaced (the review tables), each with the table's next id;
        return them with their ids (with `unique`, rows whose key is there already are skipped)."""
        return append_rows(self.parquet_dir, row_type, scan_session, rows, unique)

    def read(self, row_type: type[Row], session: str, part: str | None = None) -> list[Row]:
        """The session's rows of one table (or of one part of it: check_results per check)."""
        return read_session_rows(self.parquet_dir, row_type, session, part=part)

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]:
        """Rows of a read-only query over the views, as dicts (for queries.py and ad-hoc use)."""
        return query(self.db_path, self.parquet_dir, sql, params)

    def quarantined(self) -> list[QuarantinedFile]:
        """Unreadable Parquet files moved to <store>/_quarantine/ (oldest first)."""
        return quarantined_files(self.parquet_dir)
