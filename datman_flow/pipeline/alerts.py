"""One alert step (the `session_alerts` sensor's tick, `datman-flow alerts`): find the events
not yet sent to each configured destination, send them, record what was accepted.

A step holds <data>/state/alerts.lock, so a cron job and the sensor never send the same event
at once (the second one skips). It starts no new send after `budget_seconds` (a sensor tick
must end within a minute) nor more than `per_destination` sends to one destination (chat
webhooks limit their rate), and a destination that failed is not tried again within the
same step: what is left waits for the next step.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from datman_flow.alerts import NO_DESTINATION, AlertConfigError, AlertEvent, Destination, Ledger, alertable_events
from datman_flow.alerts.destinations import destinations_from_env
from datman_flow.alerts.ledger import GAVE_UP, LEDGER_FILE, local_now
from datman_flow.alerts.send import SendFailed, deliver
from datman_flow.layout import DataLayout
from datman_flow.pipeline.locks import try_lock
from datman_flow.pipeline.review_links import BadReviewUrl, review_url_from, session_link

STEP_BUDGET_SECONDS = 20.0
PER_DESTINATION = 20  # messages per destination and step (Slack takes about one a second per webhook)
LISTED = 5  # deliveries named in a summary line


@dataclass(frozen=True)
class Delivered:
    key: str
    title: str
    destination: str  # as it may be shown (a webhook as scheme://host/…)
    note: str = ""  # why it failed
    attempts: int = 0

    def line(self) -> str:
        return f"{self.key} -> {self.destination}" + (f": {self.note}" if self.note else "")


@dataclass
class AlertReport:
    """What one step did; nothing secret in it."""

    destinations: tuple[str, ...] = ()
    dry_run: bool = False
    busy: bool = False  # another step held the lock: this one did nothing
    sent: list[Delivered] = field(default_factory=list)
    failed: list[Delivered] = field(default_factory=list)  # tried again on a later step
    gave_up: list[Delivered] = field(default_factory=list)
    would_send: list[Delivered] = field(default_factory=list)  # dry run
    postponed: int = 0  # waiting for their retry delay or for the next step
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph: the sensor's skip reason."""
        if not self.destinations:
            return NO_DESTINATION
        if self.busy:
            return "another alert step is running (cron or the sensor): this one skipped"
        parts = []
        for items, what in ((self.sent, "sent"), (self.would_send, "dry run, would send"),
                            (self.failed, "failed, tried again later"), (self.gave_up, "given up after 24 h")):
            if items:
                named = "; ".join(item.line() for item in items[:LISTED])
                more = f"; and {len(items) - LISTED} more" if len(items) > LISTED else ""
                parts.append(f"{what} {len(items)}: {named}{more}")
        if self.postponed:
            parts.append(f"{self.postponed} waiting for a retry or the next step")
        if not parts:
            parts.append("nothing new to alert")
        return f"{'. '.join(parts)} (to {', '.join(self.destinations)})"

    def warnings(self) -> list[str]:
        return [*self.notes, *(f"alert not accepted, tried again later: {d.line()}" for d in self.failed),
                *(f"alert given up after {d.attempts} attempts in 24 h: {d.line()}" for d in self.gave_up)]


def ledger_path(layout: DataLayout) -> Path:
    return layout.root / "state" / LEDGER_FILE


def step_lock(layout: DataLayout) -> AbstractContextManager[bool]:
    """Whether this process got <data>/state/alerts.lock (held for the block), without waiting."""
    return try_lock(layout.root / "state" / "alerts.lock")


def is_new_for(event: AlertEvent, since: datetime) -> bool:
    return event.ingested_at is not None and event.ingested_at >= since


def alert_step(layout: DataLayout, env: Mapping[str, str], *, dry_run: bool = False, now: datetime | None = None,
               budget_seconds: float = STEP_BUDGET_SECONDS, per_destination: int = PER_DESTINATION) -> AlertReport:
    """Send every event not yet accepted by each destination configured in `env`; record each
    acceptance in the ledger. AlertConfigError (naming the variable) for an unusable setting;
    with no destination, a report saying so and nothing recorded. A dry run sends and records
    nothing: it lists what would be sent."""
    destinations = destinations_from_env(env)
    try:
        review_url = review_url_from(env)  # the review app, linked from reviewers' findings
    except BadReviewUrl as exc:
        raise AlertConfigError(str(exc)) from None
    report = AlertReport(tuple(d.shown for d in destinations), dry_run=dry_run)
    if not destinations:
        return report
    now = now or local_now()
    with step_lock(layout) as locked:
        if not locked:
            report.busy = True
            return report
        ledger, warning = Ledger.open(ledger_path(layout), now)
        report.notes += [warning] if warning else []
        known = set(ledger.since)
        since = {d.id: ledger.since_for(d.id, now) for d in destinations}
        for d in destinations:
            if d.id not in known:
                report.notes.append(f"alerts to {d.shown} start now ({now:%Y-%m-%d %H:%M}): events of sessions "
                                    "recorded earlier are not sent there")
        if not dry_run and set(ledger.since) != known:
            ledger.save()
        events = alertable_events(layout.metric_store, min(since.values()), partial(session_link, review_url))
        limits = Limits(time.monotonic() + budget_seconds, per_destination)
        send_all(ledger, destinations, since, events, report, now, limits)
    return report


@dataclass
class Limits:
    """What one step may still do."""

    deadline: float  # time.monotonic() after which no send starts
    per_destination: int
    tries: dict[str, int] = field(default_factory=dict)  # destination id -> sends tried in this step
    failed: set[str] = field(default_factory=set)  # destinations that failed in this step

    def allow(self, destination: str) -> bool:
        if destination in self.failed or time.monotonic() > self.deadline:
            return False
        if self.tries.get(destination, 0) >= self.per_destination:
            return False
        self.tries[destination] = self.tries.get(destination, 0) + 1
        return True


def send_all(ledger: Ledger, destinations: list[Destination], since: dict[str, datetime], events: list[AlertEvent],
             report: AlertReport, now: datetime, limits: Limits) -> None:
    for event in events:
        for dest in destinations:
            if not is_new_for(event, since[dest.id]) or ledger.settled(event.topic, dest.id):
                continue
            if not ledger.due(event.key, dest.id, now) or not limits.allow(dest.id):
                report.postponed += 1
                continue
            if report.dry_run:
                report.would_send.append(Delivered(event.key, event.title, dest.shown))
                continue
            try:
                note = deliver(dest, event)
            except SendFailed as exc:
                limits.failed.add(dest.id)
                delivery = ledger.record_failure(event.key, event.topic, dest.id, now, str(exc))
                done = Delivered(event.key, event.title, dest.shown, str(exc), delivery.attempts)
                (report.gave_up if delivery.status == GAVE_UP else report.failed).append(done)
            else:
                ledger.record_sent(event.key, event.topic, dest.id, now)
                report.sent.append(Delivered(event.key, event.title, dest.shown))
                report.notes += [note] if note else []
            ledger.save()
