"""The questions the exports ask the metric store (SQL lives in store/ only)."""

from __future__ import annotations

from datman_flow.store.metric_store import MetricStore


def measured_sessions(store: MetricStore, study: str) -> list[str]:
    """The labels of `study`'s scanning sessions (labels `STUDY_...`) with a series measured, sorted."""
    rows = store.query("SELECT DISTINCT session FROM qc_series WHERE starts_with(session, ?) AND status = 'measured' "
                       "ORDER BY session", [f"{study}_"])
    return [str(row["session"]) for row in rows]
