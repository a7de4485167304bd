"""Automatic retries of sessions whose transfer from XNAT failed, for the sensor.

A run whose pull failed (XNAT down, the session's listing refused) or that left a scan not
downloaded completely is not the lab's fault and usually not the data's: it is retried after a
delay that grows (10, 30 and 90 minutes by default), then given up with a warning. A re-run
costs little: complete scans are skipped. Failures of the data itself (a conversion that
fails, a blocking drift check) are not retried; they need a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from datman_flow.layout import DataLayout
from datman_flow.store import SeriesRow, SessionRow

DEFAULT_DELAYS_MINUTES = (10, 30, 90)
RETRY_TAG = "datman/retry"  # on a retry's run: which attempt it is (1, 2, ...)


def transfer_trouble(layout: DataLayout, label: str) -> str | None:
    """Why the session's last run did not get all of its data from XNAT, or None."""
    store = layout.metric_store
    for session in store.read(SessionRow, label):
        if session.status == "failed":
            return session.reason or "the pull failed"
    failed = [series.scan_id for series in store.read(SeriesRow, label) if series.download_status == "failed"]
    return f"scan(s) {', '.join(failed)} not downloaded completely" if failed else None


@dataclass
class RetryBook:
    """Retries waiting for their time, and how far the finished runs have been looked at."""

    due: dict[str, tuple[int, str]] = field(default_factory=dict)  # label -> (attempt, ISO time)
    runs_after: str = ""  # ISO time of the newest finished run already considered

    def schedule(self, label: str, attempts_done: int, now: datetime, delays: tuple[int, ...]) -> datetime | None:
        """Book attempt ``attempts_done + 1``; None when the delays are used up."""
        if attempts_done >= len(delays):
            return None
        when = now + timedelta(minutes=delays[attempts_done])
        self.due[label] = (attempts_done + 1, when.isoformat())
        return when

    def take_due(self, now: datetime) -> list[tuple[str, int]]:
        """The (label, attempt) pairs whose time has come, removed from the book."""
        ready = sorted((label, attempt) for label, (attempt, when) in self.due.items()
                       if datetime.fromisoformat(when) <= now)
        for label, _ in ready:
            del self.due[label]
        return ready

    def to_dict(self) -> dict[str, object]:
        return {"due": {label: list(entry) for label, entry in sorted(self.due.items())}, "runs_after": self.runs_after}

    @classmethod
    def from_dict(cls, raw: object) -> RetryBook:
        if not isinstance(raw, dict):
            return cls()
        try:
            due = {str(label): (int(entry[0]), str(entry[1])) for label, entry in dict(raw.get("due", {})).items()}
            return cls(due, str(raw.get("runs_after", "")))
        except (TypeError, ValueError, IndexError):
            return cls()


@dataclass(frozen=True)
class RetryNote:
    message: str
    gave_up: bool  # the retries are used up: a person must look (a warning, not news)


def book_finished_run(book: RetryBook, layout: DataLayout, label: str, attempts_done: int, now: datetime,
                      delays: tuple[int, ...]) -> RetryNote | None:
    """After a session's run has finished: book a retry if its transfer from XNAT failed and
    retries are left. Returns what to tell the operator, or None when there is nothing to say
    (the transfer was complete, or a retry is already booked)."""
    trouble = transfer_trouble(layout, label)
    if not trouble or label in book.due:
        return None
    when = book.schedule(label, attempts_done, now, delays)
    if when is None:
        return RetryNote(f"session {label!r}: {trouble}; given up after {attempts_done} retries "
                         f"(run it again by hand once XNAT is fine)", gave_up=True)
    return RetryNote(f"session {label!r}: {trouble}; retry {attempts_done + 1} at {when:%H:%M} UTC", gave_up=False)
