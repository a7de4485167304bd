"""The metric store: typed rows (rows.py) written as per-session Parquet files and read through
views in metrics.duckdb; every query the rest of the code asks is a named function in queries.py.
The store imports nothing of the project above it."""

from datman_flow.store.database import ensure_views, open_store, query
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.rows import (
    CheckRow,
    HeaderDiffRow,
    HeaderParameterRow,
    MorphometryRow,
    QcFlagRow,
    QcMetricRow,
    QcSeriesRow,
    SeriesRow,
    SessionRow,
)
from datman_flow.store.schema import TABLES

__all__ = ["TABLES", "CheckRow", "HeaderDiffRow", "HeaderParameterRow", "MetricStore", "MorphometryRow", "QcFlagRow",
           "QcMetricRow", "QcSeriesRow", "SeriesRow", "SessionRow", "ensure_views", "open_store", "query"]
