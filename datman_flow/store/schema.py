"""The metric store's tables as DuckDB sees them, derived from the typed rows of rows.py.

Each table's columns are its row's fields, in order; each column's DuckDB type follows from
the field's Python type. Adding a column is safe: the views read the per-session Parquet
files with union_by_name, so older files show NULL for it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime

from datman_flow.store.rows import ROW_TYPES

SQL_TYPES: dict[object, str] = {str: "VARCHAR", int: "INTEGER", float: "DOUBLE", bool: "BOOLEAN",
                                datetime: "TIMESTAMP", tuple[str, ...]: "VARCHAR[]"}


def sql_type(annotation: object) -> str:
    """The DuckDB type of a row field's type (`X | None` is X: every column may be NULL)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) == 1:
            return sql_type(kinds[0])
    if annotation in SQL_TYPES:
        return SQL_TYPES[annotation]
    raise TypeError(f"no DuckDB type for a row field of type {annotation!r}")


def row_columns(row_type: type) -> tuple[tuple[str, str], ...]:
    hints = typing.get_type_hints(row_type)
    return tuple((f.name, sql_type(hints[f.name])) for f in dataclasses.fields(row_type))


def table_of(row_type: type) -> str:
    return str(row_type.TABLE)  # type: ignore[attr-defined]


# table -> ordered (column, type) pairs
TABLES: dict[str, tuple[tuple[str, str], ...]] = {table_of(row): row_columns(row) for row in ROW_TYPES}


def columns(table: str) -> list[str]:
    return [name for name, _ in TABLES[table]]


def create_table_sql(table: str, name: str | None = None) -> str:
    cols = ", ".join(f'"{col}" {kind}' for col, kind in TABLES[table])
    return f'CREATE TABLE "{name or table}" ({cols})'


# The views type what the Parquet files keep as text (as XNAT and DICOM wrote it), so that a
# data manager's query sorts and filters them as numbers and dates: series numbers as INTEGER,
# the scan date as DATE and XNAT's insert date as TIMESTAMP. A value that does not parse is NULL
# in the view (the file keeps it).
DATE_SQL = "coalesce(try_cast({c} AS DATE), try_strptime({c}, '%Y%m%d')::DATE)"
TIMESTAMP_SQL = "coalesce(try_cast({c} AS TIMESTAMP), try_strptime({c}, '%Y%m%d'))"
VIEW_TYPES: dict[str, str] = {"series_number": "try_cast({c} AS INTEGER)", "scan_date": DATE_SQL,
                              "insert_date": TIMESTAMP_SQL}


def typed_select(table: str, source: str) -> str:
    """SELECT every column of `table` from `source`, the VIEW_TYPES columns typed."""
    typed = [VIEW_TYPES[col].format(c=f'"{col}"') + f' AS "{col}"' for col in columns(table) if col in VIEW_TYPES]
    replace = f" REPLACE ({', '.join(typed)})" if typed else ""
    return f"SELECT *{replace} FROM {source}"


# One row per session: what it is, how far it got, its health and the counts behind it.
SESSION_SUMMARY_SQL = """
SELECT s.session, s.study, s.site, s.subject, s.is_phantom, s.scan_date, s.insert_date, s.ingested_at,
       s.status, s.health, s.health_reasons, s.reason,
       coalesce(r.series, 0) AS series, coalesce(r.converted, 0) AS converted,
       coalesce(r.failed_downloads, 0) AS failed_downloads, coalesce(r.failed_conversions, 0) AS failed_conversions,
       coalesce(c.checks_failed, 0) AS checks_failed, coalesce(c.checks_not_evaluated, 0) AS checks_not_evaluated,
       coalesce(q.measured, 0) AS qc_measured, coalesce(q.failed, 0) AS qc_failed,
       coalesce(f.flagged, 0) AS qc_flagged
FROM sessions s
LEFT JOIN (SELECT session, count(*) AS series,
                  count(*) FILTER (WHERE conversion_status = 'converted') AS converted,
                  count(*) FILTER (WHERE download_status <> 'complete') AS failed_downloads,
                  count(*) FILTER (WHERE tag IS NOT NULL AND conversion_status = 'failed') AS failed_conversions
           FROM series GROUP BY session) r USING (session)
LEFT JOIN (SELECT session, count(*) FILTER (WHERE passed = false) AS checks_failed,
                  count(*) FILTER (WHERE passed IS NULL) AS checks_not_evaluated
           FROM check_results GROUP BY session) c USING (session)
LEFT JOIN (SELECT session, count(*) FILTER (WHERE status = 'measured') AS measured,
                  count(*) FILTER (WHERE status = 'failed') AS failed
           FROM qc_series GROUP BY session) q USING (session)
LEFT JOIN (SELECT session, count(*) AS flagged FROM qc_flags GROUP BY session) f USING (session)
"""
DERIVED_VIEWS: dict[str, str] = {"session_summary": SESSION_SUMMARY_SQL.strip()}
