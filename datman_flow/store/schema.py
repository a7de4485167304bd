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
