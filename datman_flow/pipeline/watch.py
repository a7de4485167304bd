"""Watching XNAT for sessions to ingest: one implementation for the sensor and for
`datman-flow ingest --new` (a cron job), so that a fix to polling or retrying lands once.

The state between two looks is one JSON document, ``{"poll": <PollCursor>, "retry":
<RetryBook>}``: the sensor keeps it as its cursor, the CLI in <data>/state/. Each look lists
every configured XNAT project for new sessions (rejected labels recorded with the reason)
and hands back the retries whose time has come; after each run the caller reports it with
`finished`, which books a retry when the transfer from XNAT failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from datman_flow.config import LabConfig
from datman_flow.layout import DataLayout
from datman_flow.pipeline import persist
from datman_flow.pipeline.poll import DEFAULT_SETTLE, NewSession, PollCursor, RejectedSession, poll_new_sessions
from datman_flow.pipeline.retry import DEFAULT_DELAYS_MINUTES, RetryBook, RetryNote, book_finished_run
from datman_flow.store.queries import sessions_in_status_since
from datman_flow.xnat import XnatClient

# longer than any pull should take (each scan has its own deadline in xnat/), short enough to
# recover the same day from a run whose process died
DEFAULT_STUCK_AFTER = timedelta(hours=3)
# how long one look waits out an XNAT outage before giving up (the next tick or cron run looks
# again; a run's own requests wait longer, xnat/client.py's default retry budget)
LISTING_RETRY_SECONDS = 20.0

DUE_AT_ONCE = datetime.min.replace(tzinfo=UTC).isoformat()


@dataclass
class WatchState:
    poll: PollCursor = field(default_factory=PollCursor)
    retries: RetryBook = field(default_factory=RetryBook)

    def to_json(self) -> str:
        return json.dumps({"poll": json.loads(self.poll.to_json()), "retry": self.retries.to_dict()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> WatchState:
        """The state, from its JSON or from the older forms (a bare poll cursor set by hand in
        the UI; the CLI's ``{"cursor": ..., "retry": [labels]}``, whose labels are due now).
        Unreadable text means: look at everything again (run keys prevent double runs)."""
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except ValueError:
            return cls()
        if isinstance(raw, dict) and "poll" in raw:
            return cls(PollCursor.from_json(json.dumps(raw["poll"])), RetryBook.from_dict(raw.get("retry")))
        if isinstance(raw, dict) and "cursor" in raw:  # `ingest --new` before the two were one
            labels = raw.get("retry") if isinstance(raw.get("retry"), list) else []
            book = RetryBook({str(label): (1, DUE_AT_ONCE) for label in labels})
            return cls(PollCursor.from_json(json.dumps(raw["cursor"])), book)
        return cls(PollCursor.from_json(text), RetryBook())


@dataclass
class Look:
    """What one look at XNAT found."""

    new: list[NewSession]
    rejected: list[RejectedSession]
    retries: list[tuple[str, int]]  # (label, attempt) due now
    listed: int
    errors: list[str]  # projects that could not be listed, and why
    stuck: list[str] = field(default_factory=list)  # what was said of sessions stuck in `ingesting`
    pending: list[str] = field(default_factory=list)  # new or changed sessions still settling on XNAT

    @property
    def labels(self) -> list[str]:
        """Every session to run now: due retries first, then new sessions (each once)."""
        return list(dict.fromkeys([label for label, _ in self.retries] + [n.target.label for n in self.new]))

    @property
    def changed(self) -> list[str]:
        """Sessions ingested before whose scans changed on XNAT since."""
        return [n.target.label for n in self.new if n.changed]


def book_stuck(state: WatchState, layout: DataLayout, now: datetime, stuck_after: timedelta,
               is_active: Callable[[str], bool]) -> list[str]:
    """Sessions recorded as `ingesting` longer than `stuck_after` with no run of theirs going on
    (the process died, the machine restarted) are treated as a failed transfer: retried now."""
    if not layout.metric_store.parquet_dir.is_dir():  # nothing recorded yet (and a dry run creates nothing)
        return []
    cutoff = datetime.now() - stuck_after  # `ingested_at` is local time
    said = []
    for row in sessions_in_status_since(layout.metric_store, "ingesting", cutoff):
        if row.session in state.retries.due or is_active(row.session):
            continue
        state.retries.due[row.session] = (1, now.isoformat())
        said.append(f"session {row.session!r} has been `ingesting` since {row.ingested_at} and no run is "
                    f"working on it: run again")
    return said


def look(config: LabConfig, state: WatchState, client_for: Callable[[str], XnatClient], layout: DataLayout,
         now: datetime, record_rejected: bool = True, stuck_after: timedelta = DEFAULT_STUCK_AFTER,
         is_active: Callable[[str], bool] = lambda label: False, settle: timedelta = DEFAULT_SETTLE) -> Look:
    """List XNAT once and take the due retries (sessions stuck in `ingesting` included);
    `state` moves on (the caller saves it). XnatError propagates when no project at all could
    be listed (the state's poll cursor is then unchanged and the retries stay booked)."""
    stuck = book_stuck(state, layout, now, stuck_after, is_active)
    result = poll_new_sessions(config, state.poll, client_for, now, settle)
    state.poll = result.cursor
    if record_rejected:
        for rejected in result.rejected:
            exp = rejected.experiment
            persist.record_session(layout, persist.rejected_row(exp.label, exp.project, exp.id, exp.insert_date,
                                                                rejected.reason))
    return Look(result.new, result.rejected, state.retries.take_due(now), result.listed, result.errors, stuck,
                result.pending)


def finished(state: WatchState, layout: DataLayout, label: str, attempts_done: int, now: datetime,
             delays: tuple[int, ...] = DEFAULT_DELAYS_MINUTES) -> RetryNote | None:
    """Report a finished run of `label` (`attempts_done`: 0 for a first run, n for retry n)."""
    return book_finished_run(state.retries, layout, label, attempts_done, now, delays)
