"""The questions the exports ask the metric store (SQL lives in store/ only)."""

from __future__ import annotations

from datman_flow.store.files import make_row
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.rows import SessionRow


def measured_sessions(store: MetricStore, study: str) -> list[str]:
    """The labels of `study`'s scanning sessions (labels `STUDY_...`) with a series measured, sorted."""
    rows = store.query("SELECT DISTINCT session FROM qc_series WHERE starts_with(session, ?) AND status = 'measured' "
                       "ORDER BY session", [f"{study}_"])
    return [str(row["session"]) for row in rows]


def study_sessions(store: MetricStore, study: str) -> list[SessionRow]:
    """Every recorded session of `study` (participants and phantoms), by label."""
    if not store.exists:
        return []
    rows = store.query("SELECT * FROM sessions WHERE study = ? ORDER BY session", [study])
    return [make_row(SessionRow, row) for row in rows]
