"""Every session's review state at once, for the views over many sessions (the board,
`datman-flow status`): the four review tables read whole (one query each, not four file reads
per session), grouped by scanning session, each group judged by review_state.review_state, the
one function that says what a review means.

Times: the review tables keep naive UTC (`created`), the `sessions` table naive local time
(`ingested_at`). `local_from_utc` (alerts/ledger.py, the clock of the alerts' ledger too) turns
the first into the second, so the two can be compared.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from datman_flow.alerts.ledger import local_from_utc
from datman_flow.layout import DataLayout
from datman_flow.pipeline.review_state import ReviewState, review_state
from datman_flow.store.review_rows import RatingImageRow, RatingRow, SeriesDecisionRow, SignOffRow
from datman_flow.store.table_cache import TableCache


def by_session(rows: Iterable, attr: str = "scan_session") -> dict[str, list]:
    """Rows grouped by the session label in `attr` (the review tables' `scan_session`, the
    pipeline tables' `session`)."""
    out: dict[str, list] = defaultdict(list)
    for row in rows:
        out[getattr(row, attr)].append(row)
    return out


def review_states(layout: DataLayout) -> dict[str, ReviewState]:
    """The review state of every session that has a review row (a picture registered, a rating,
    a sign-off or a decision), by label. A session missing here has nothing: `pending`."""
    store = layout.metric_store
    if not store.exists:  # reading would create the store
        return {}
    tables = [by_session(TableCache(store.parquet_dir, row_type).rows())
              for row_type in (RatingImageRow, RatingRow, SignOffRow, SeriesDecisionRow)]
    labels = sorted(set().union(*tables))
    images, ratings, signoffs, decisions = tables
    return {label: review_state(label, images.get(label, []), ratings.get(label, []), signoffs.get(label, []),
                                decisions.get(label, [])) for label in labels}


def state_of(states: dict[str, ReviewState], label: str) -> ReviewState:
    return states.get(label) or review_state(label, [], [], [], [])


def signed_off_after(state: ReviewState | None, ingested_at: datetime | None) -> bool:
    """A reviewer signed the session off after its latest run was recorded (so everything that
    run found has been seen by a person)."""
    if state is None or state.signoff is None or ingested_at is None:
        return False
    return local_from_utc(state.signoff.created) >= ingested_at
