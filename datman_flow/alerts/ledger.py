"""Which alerts each destination has accepted: <data>/state/alerts_sent.json, written atomically
after every change, so an alert is never sent twice to a destination, also not after a restart.

- An event counts as sent to a destination only once that destination accepted it.
- A destination that failed is tried again on a later step: at once, then after 1, 2, 4, ...
  minutes (at most an hour apart); 24 hours after its first failure it is given up (recorded,
  and reported once).
- Each destination has a `since`: the time it first appeared in the ledger. Events of sessions
  recorded before it are not sent there, so switching alerts on (or adding a destination) does
  not flood the channel with the store's history.

Times are local, without a time zone, like the store's `ingested_at`. An unreadable ledger is
moved aside and a new one started (nothing old is sent again: its destinations start from now).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from datman_flow.atomic import write_text_atomic

LEDGER_FILE = "alerts_sent.json"
VERSION = 1
GIVE_UP_AFTER = timedelta(hours=24)
MAX_DELAY = timedelta(hours=1)
SENT, FAILING, GAVE_UP = "sent", "failing", "gave_up"


def local_now() -> datetime:
    return datetime.now().replace(microsecond=0)


def local_from_utc(utc: datetime) -> datetime:
    """A naive UTC time (the review tables' `created`) as naive local time, the clock of the
    ledger and of the store's `ingested_at`."""
    return utc.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)


def retry_delay(attempts: int) -> timedelta:
    """The wait after `attempts` failed attempts: none after the first, then 1, 2, 4, ... minutes."""
    if attempts <= 1:
        return timedelta(0)
    return min(timedelta(minutes=2 ** min(attempts - 2, 16)), MAX_DELAY)


@dataclass
class Delivery:
    """One event at one destination."""

    status: str  # sent | failing | gave_up
    attempts: int = 0
    first_attempt: str = ""  # ISO, local time
    last_attempt: str = ""
    sent_at: str = ""
    reason: str = ""  # the last failure's

    @classmethod
    def from_dict(cls, raw: dict) -> Delivery:
        return cls(status=str(raw["status"]), attempts=int(raw.get("attempts", 0)),
                   first_attempt=str(raw.get("first_attempt", "")), last_attempt=str(raw.get("last_attempt", "")),
                   sent_at=str(raw.get("sent_at", "")), reason=str(raw.get("reason", "")))


@dataclass
class Ledger:
    path: Path
    created: datetime
    since: dict[str, datetime] = field(default_factory=dict)  # destination id -> first configured
    topics: dict[str, str] = field(default_factory=dict)  # event key -> its topic
    deliveries: dict[str, dict[str, Delivery]] = field(default_factory=dict)  # key -> destination id -> Delivery
    exists: bool = False  # read from its file (False: new, not yet written)
    done: set[tuple[str, str]] = field(init=False, repr=False)  # (topic, destination) sent or given up

    def __post_init__(self) -> None:
        self.done = {(self.topics.get(key, key), d) for key, to in self.deliveries.items()
                     for d, delivery in to.items() if delivery.status in (SENT, GAVE_UP)}

    @classmethod
    def open(cls, path: Path, now: datetime) -> tuple[Ledger, str]:
        """The ledger at `path` (a new one, created `now`, when there is none), and a warning
        when the file was unreadable and has been moved aside ('' otherwise)."""
        if not path.exists():
            return cls(path, now), ""
        try:
            return cls.from_json(path, json.loads(path.read_text())), ""
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            aside = path.with_name(f"{path.name}.unreadable-{now:%Y%m%dT%H%M%S}")
            os.replace(path, aside)
            return cls(path, now), (f"alert ledger {path} was unreadable ({type(exc).__name__}: {exc}); moved to "
                                    f"{aside.name} and started anew: only events from now on are sent")

    @classmethod
    def from_json(cls, path: Path, raw: dict) -> Ledger:
        if raw.get("version") != VERSION:
            raise ValueError(f"version {raw.get('version')!r}, expected {VERSION}")
        since = {str(d): datetime.fromisoformat(v["since"]) for d, v in raw["destinations"].items()}
        topics, deliveries = {}, {}
        for key, entry in raw["events"].items():
            topics[str(key)] = str(entry["topic"])
            deliveries[str(key)] = {str(d): Delivery.from_dict(v) for d, v in entry["to"].items()}
        return cls(path, datetime.fromisoformat(raw["created"]), since, topics, deliveries, exists=True)

    def to_json(self) -> str:
        return json.dumps({
            "version": VERSION, "created": self.created.isoformat(),
            "destinations": {d: {"since": when.isoformat()} for d, when in sorted(self.since.items())},
            "events": {key: {"topic": self.topics.get(key, key),
                             "to": {d: asdict(v) for d, v in sorted(self.deliveries[key].items())}}
                       for key in sorted(self.deliveries)},
        }, indent=1, sort_keys=True) + "\n"

    def save(self) -> None:
        write_text_atomic(self.path, self.to_json())
        self.exists = True

    def since_for(self, destination: str, now: datetime) -> datetime:
        """When `destination` was first configured (now, if it is new here)."""
        return self.since.setdefault(destination, now)

    def delivery(self, key: str, destination: str) -> Delivery | None:
        return self.deliveries.get(key, {}).get(destination)

    def settled(self, topic: str, destination: str) -> bool:
        """Nothing more to do for the topic at the destination: an event of it was sent there or
        given up (under its key or, for an upgrade, another key of the same topic)."""
        return (topic, destination) in self.done

    def due(self, key: str, destination: str, now: datetime) -> bool:
        """The event may be tried at the destination now (never tried, or its retry delay passed)."""
        delivery = self.delivery(key, destination)
        if delivery is None:
            return True
        if delivery.status != FAILING:
            return False
        try:
            return datetime.fromisoformat(delivery.last_attempt) + retry_delay(delivery.attempts) <= now
        except ValueError:  # edited by hand: try now
            return True

    def _entry(self, key: str, topic: str, destination: str) -> Delivery:
        self.topics[key] = topic
        return self.deliveries.setdefault(key, {}).setdefault(destination, Delivery(FAILING))

    def record_sent(self, key: str, topic: str, destination: str, now: datetime) -> None:
        delivery = self._entry(key, topic, destination)
        delivery.status, delivery.sent_at = SENT, now.isoformat()
        self.done.add((topic, destination))
        delivery.attempts += 1
        delivery.first_attempt = delivery.first_attempt or now.isoformat()
        delivery.last_attempt = now.isoformat()

    def record_failure(self, key: str, topic: str, destination: str, now: datetime, reason: str) -> Delivery:
        """Count a failed attempt; the delivery is given up when its first failure is older than
        GIVE_UP_AFTER."""
        delivery = self._entry(key, topic, destination)
        delivery.attempts += 1
        delivery.first_attempt = delivery.first_attempt or now.isoformat()
        delivery.last_attempt, delivery.reason = now.isoformat(), reason
        try:
            first = datetime.fromisoformat(delivery.first_attempt)
        except ValueError:  # edited by hand: count from now
            first = now
            delivery.first_attempt = now.isoformat()
        if now - first >= GIVE_UP_AFTER:
            delivery.status = GAVE_UP
            self.done.add((topic, destination))
        return delivery
