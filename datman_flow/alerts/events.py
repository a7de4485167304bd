"""The events worth a message to a lab that is not watching the UI, from the metric store:
a session whose health is `attention` or `failed`, and a scanner software upgrade at a site.

Each event has a stable key (what the ledger records as sent) and a topic (what is sent at
most once per destination): for a session's health both are "<session>:health:<verdict>", so
a session that goes from attention to failed is told again; for an upgrade the key names the
first session that showed it ("<session>:software_upgrade:<site>:<version>") and the topic is
the study, site and version, so the upgrade is told once even when an earlier-scanned session
is ingested later and becomes the first.

Everything in a message that comes from XNAT or DICOM (labels, reasons, version strings) is
made one line of bounded length: a version string cannot add a header line to a mail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from datman_flow.store.alert_queries import SoftwareUpgrade, sessions_needing_attention, software_upgrades
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.queries import SessionSummary

Kind = Literal["attention", "failed", "software_upgrade"]
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
TITLE_LIMIT = 150
LINE_LIMIT = 600


@dataclass(frozen=True)
class AlertEvent:
    key: str  # stable: what the ledger records as sent
    session: str  # the session it is about (for an upgrade: the first that showed it)
    kind: Kind
    title: str  # one line: a mail's subject, a chat message's first line
    text: str  # a few lines: what, why, what to do next
    topic: str  # sent at most once per destination (see the module's docstring)
    ingested_at: datetime | None  # when its session was recorded: older than a destination, not sent there


def one_line(text: object, limit: int = LINE_LIMIT) -> str:
    """`text` without control characters (newlines included), at most `limit` characters."""
    flat = " ".join(CONTROL.sub(" ", str(text)).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def version_text(value: object) -> str:
    """A SoftwareVersions value as one line (DICOM may give several values)."""
    if isinstance(value, (list, tuple)):
        return one_line(" / ".join(str(v) for v in value), 120)
    return one_line(value, 120)


def counts_line(facts: SessionSummary) -> str:
    parts = [f"{facts.series} series, {facts.converted} converted"]
    for count, what in ((facts.failed_downloads, "download(s) failed"),
                        (facts.failed_conversions, "conversion(s) failed"),
                        (facts.checks_failed, "check result(s) failed"), (facts.qc_failed, "QC measurement(s) failed"),
                        (facts.qc_flagged, "QC flag(s)")):
        if count:
            parts.append(f"{count} {what}")
    return "; ".join(parts)


def health_event(facts: SessionSummary) -> AlertEvent:
    session = one_line(facts.session, 120)
    verdict = "failed" if facts.health == "failed" else "attention"
    where = [f"study {one_line(facts.study, 40)}" if facts.study else "", f"site {one_line(facts.site, 40)}"
             if facts.site else "", f"scanned {facts.scan_date}" if facts.scan_date else ""]
    if verdict == "failed":
        title = f"{session} failed"
        todo = (f"Next: open the Dagster UI, asset partition {session}, read why the run failed, fix the cause and "
                f"re-execute the partition (or `datman-flow ingest --session {session}`).")
    else:
        title = f"{session} needs attention"
        todo = f"Next: open the Dagster UI, asset partition {session}, and review its failed checks and QC flags."
    about = ", ".join(part for part in where if part)
    lines = [f"Session {session}{f' ({about})' if about else ''}: health {verdict}, "
             f"status {one_line(facts.status, 40) or 'unknown'}.",
             f"Why: {one_line(facts.health_reasons) or 'no reason recorded'}.",
             f"Found: {counts_line(facts)}.", todo]
    key = f"{facts.session}:health:{verdict}"
    return AlertEvent(key=key, session=facts.session, kind=verdict, title=one_line(title, TITLE_LIMIT),
                      text="\n".join(lines), topic=key, ingested_at=facts.ingested_at)


def promote_line(upgrade: SoftwareUpgrade, session: str) -> str:
    tags = [one_line(t, 40) for t in upgrade.tags] or ["TAG"]
    first = f"`datman-flow gold promote --session {session} --tag {tags[0]}`"
    if upgrade.is_phantom:
        first = f"`datman-flow gold promote --session <a participant's session scanned with it> --tag {tags[0]}`"
    more = f" (and the same for {', '.join(tags[1:])})" if len(tags) > 1 else ""
    return (f"Next: review the upgrade (the Dagster UI, partition {session}, check header_drift: did other "
            f"parameters change with it?), then {first}{more} to make it the site's reference.")


def upgrade_event(upgrade: SoftwareUpgrade) -> AlertEvent:
    session, study, site = one_line(upgrade.session, 120), one_line(upgrade.study, 40), one_line(upgrade.site, 40)
    version, previous = version_text(upgrade.version), version_text(upgrade.previous)
    scanned = f", scanned {upgrade.scan_date}" if upgrade.scan_date else ""
    series = ", ".join(f"{one_line(number, 20)} ({one_line(tag, 40)})" for number, tag in upgrade.series)
    phantom = " (a phantom)" if upgrade.is_phantom else ""
    lines = [f"The scanner software at {study} site {site} changed from {previous} to {version}.",
             f"First seen in session {session}{phantom}{scanned}: series {series}; "
             f"{upgrade.sessions} session(s) show it so far.",
             promote_line(upgrade, session)]
    return AlertEvent(key=f"{upgrade.session}:software_upgrade:{upgrade.site}:{version}", session=upgrade.session,
                      kind="software_upgrade", title=one_line(f"Scanner software upgrade at {study} {site}: {version}",
                                                              TITLE_LIMIT),
                      text="\n".join(lines), topic=f"software_upgrade:{upgrade.study}:{upgrade.site}:{version}",
                      ingested_at=upgrade.ingested_at)


def recorded_since(events: Sequence[AlertEvent], since: datetime) -> list[AlertEvent]:
    return [e for e in events if e.ingested_at is not None and e.ingested_at >= since]


def alertable_events(store: MetricStore, since: datetime) -> list[AlertEvent]:
    """The events of sessions recorded at or after `since` (local time, as `ingested_at` is
    written): upgrades first (they concern a whole site), then sessions, oldest first."""
    upgrades = recorded_since([upgrade_event(u) for u in software_upgrades(store)], since)
    return upgrades + [health_event(facts) for facts in sessions_needing_attention(store, since)]
