"""The metric store: per-session Parquet files read through views in metrics.duckdb."""

from datman_flow.store.database import ensure_views, open_store, query
from datman_flow.store.files import replace_session_rows
from datman_flow.store.schema import TABLES

__all__ = ["TABLES", "ensure_views", "open_store", "query", "replace_session_rows"]
