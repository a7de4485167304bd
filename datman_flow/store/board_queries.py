"""The store's answers for the operator's board (pipeline/board.py)."""

from __future__ import annotations

from collections.abc import Sequence

from datman_flow.store.files import make_row
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.rows import SessionRow


def sessions_needing_a_person(store: MetricStore, also: Sequence[str] = ()) -> list[SessionRow]:
    """Sessions refused at the door or judged `attention` / `failed`, and the sessions named in
    `also` (those whose review failed), newest first (scan date, else when they were recorded)."""
    rows = store.query(
        "SELECT * FROM sessions WHERE status = 'rejected' OR health IN ('attention', 'failed') "
        "OR list_contains(?::VARCHAR[], session) "
        "ORDER BY coalesce(scan_date, insert_date::DATE, ingested_at::DATE) DESC NULLS LAST, ingested_at DESC, "
        "session", [list(also)])
    return [make_row(SessionRow, row) for row in rows]
