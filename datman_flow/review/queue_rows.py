"""The review queue's rows: one per recorded session (refused labels left out), newest scan
first, with its health and the board's reasons, the review findings, how many ratings it has
and where its review stands (pipeline/review_state.py decides that, as for the check).

Built from six tables kept in memory (TableCache: a folder listing per call, only changed files
read again) and remembered until one of them changes, so the queue costs a few folder listings
per page view with 2,000 sessions, never a query over every file."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from datman_flow.pipeline.review_overview import by_session
from datman_flow.pipeline.review_state import FAILED, PASSED, PENDING, review_state
from datman_flow.store import MetricStore, SeriesRow, SessionRow
from datman_flow.store.review_rows import RatingImageRow, RatingRow, SeriesDecisionRow, SignOffRow
from datman_flow.store.table_cache import TableCache

STATES = ("all", PENDING, FAILED, PASSED)  # the queue's filters; none given: pending and failed-not-settled


@dataclass(frozen=True)
class QueueRow:
    label: str
    study: str
    site: str
    scan_date: str  # the scan date, else the day XNAT got it, else ''
    status: str
    health: str
    reasons: tuple[str, ...]  # the health's reasons, then the review's findings
    ratings: int
    rated_images: int
    images: int
    state: str  # pending | passed | failed
    settled: bool  # signed off after every finding
    tags: frozenset[str]  # tags of the converted series

    @property
    def needs_review(self) -> bool:
        return self.state == PENDING or (self.state == FAILED and not self.settled)


def queue_rows(sessions: Sequence[SessionRow], series: Sequence[SeriesRow], images: Sequence[RatingImageRow],
               ratings: Sequence[RatingRow], signoffs: Sequence[SignOffRow],
               decisions: Sequence[SeriesDecisionRow]) -> list[QueueRow]:
    """Every session's row, newest scan first (then by label)."""
    series_of, images_of = by_session(series, "session"), by_session(images, "scan_session")
    ratings_of, signoffs_of = by_session(ratings, "scan_session"), by_session(signoffs, "scan_session")
    decisions_of = by_session(decisions, "scan_session")
    out = []
    for s in sorted(sessions, key=lambda r: r.session):
        if s.status == "rejected":  # never ingested: nothing to look at (the board shows it)
            continue
        state = review_state(s.session, images_of.get(s.session, ()), ratings_of.get(s.session, ()),
                             signoffs_of.get(s.session, ()), decisions_of.get(s.session, ()))
        reasons = tuple(r for r in s.health_reasons.split("; ") if r) + tuple(f.text for f in state.findings)
        tags = frozenset(x.tag for x in series_of.get(s.session, ()) if x.tag and x.conversion_status == "converted")
        out.append(QueueRow(s.session, s.study, s.site, s.scan_date or (s.insert_date or "")[:10], s.status,
                            s.health, reasons, state.ratings, state.rated_images, state.images, state.state,
                            state.settled, tags))
    out.sort(key=lambda r: r.scan_date, reverse=True)  # stable: labels stay in order within a day
    return out


def select(rows: Sequence[QueueRow], state: str = "", study: str = "", site: str = "",
           tag: str = "") -> list[QueueRow]:
    """The rows a filter keeps (state '' : those that need a person, pending or failed and not
    settled)."""
    def keep(r: QueueRow) -> bool:
        if state == "" and not r.needs_review or state not in ("", "all") and r.state != state:
            return False
        return (not study or r.study == study) and (not site or r.site == site) and (not tag or tag in r.tags)
    return [r for r in rows if keep(r)]


def next_to_review(rows: Sequence[QueueRow]) -> QueueRow | None:
    """The pending session with the fewest ratings, the newest among equals (rows come newest first)."""
    pending = [(r.ratings, i, r) for i, r in enumerate(rows) if r.state == PENDING]
    return min(pending, key=lambda t: (t[0], t[1]))[2] if pending else None


class ReviewQueue:
    """`queue.rows()`: the queue as of now. Each session's row is rebuilt only when one of its
    files changed (a rating rewrites one file: one session's row is rebuilt, not 2,000)."""

    def __init__(self, store: MetricStore) -> None:
        self.caches: tuple[TableCache, ...] = tuple(TableCache(store.parquet_dir, t) for t in (
            SessionRow, SeriesRow, RatingImageRow, RatingRow, SignOffRow, SeriesDecisionRow))
        self._lock = threading.Lock()
        self._per_file: dict[str, tuple[tuple, list[QueueRow]]] = {}  # session file -> (signatures, its row)
        self._rows: list[QueueRow] = []

    def rows(self) -> list[QueueRow]:
        with self._lock:
            files = [cache.by_file() for cache in self.caches]
            changed, per_file = False, {}
            for name, (_, sessions) in files[0].items():
                key = tuple(f[name][0] if name in f else None for f in files)
                known = self._per_file.get(name)
                if known is None or known[0] != key:
                    known = (key, queue_rows(sessions, *(f[name][1] if name in f else [] for f in files[1:])))
                    changed = True
                per_file[name] = known
            if changed or per_file.keys() != self._per_file.keys():
                by_label = sorted((row for _, rows in per_file.values() for row in rows), key=lambda r: r.label)
                self._rows = sorted(by_label, key=lambda r: r.scan_date, reverse=True)  # stable: labels in order
            self._per_file = per_file
            return self._rows

