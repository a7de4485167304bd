"""The events worth a message to a lab that is not watching the UI, from the metric store:
a session whose health is `attention` or `failed`, a scanner software upgrade at a site, and a
reviewer's finding (a picture rated FAIL, a series blacklisted).

Each event has a stable key (what the ledger records as sent) and a topic (what is sent at
most once per destination): for a session's health both are "<session>:health:<verdict>", so
a session that goes from attention to failed is told again; for an upgrade the key names the
first session that showed it ("<session>:software_upgrade:<site>:<version>") and the topic is
the study, site and version, so the upgrade is told once even when an earlier-scanned session
is ingested later and becomes the first; for a review finding both are
"<session>:review:rating-<id>" or "<session>:review:decision-<id>" (ratings and decisions have
separate id counters), and its time is the finding's (as local time, like `ingested_at`), so
only findings made since a destination was configured are sent there. A finding undone before
a step saw it (a later PASS, a series cleared) is not told.

Everything in a message that comes from XNAT, DICOM or a reviewer (labels, reasons, version
strings, notes) is made one line of bounded length: a version string cannot add a header line to
a mail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from datman_flow.alerts.ledger import local_from_utc
from datman_flow.review.scales import DISPLAY_NAMES, Display
from datman_flow.store.alert_queries import (
    ReviewFinding,
    SoftwareUpgrade,
    review_findings,
    sessions_needing_attention,
    software_upgrades,
)
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.queries import SessionSummary

Kind = Literal["attention", "failed", "software_upgrade", "review_failed"]
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


def picture_text(finding: ReviewFinding) -> str:
    """'the axial picture, slice 88' (what was rated), or '' when the picture is unknown."""
    if finding.display is None or finding.display not in iter(Display):
        return ""
    where = f", slice {finding.slice}" if finding.slice is not None else ""
    return f"the {DISPLAY_NAMES[Display(finding.display)]} picture{where}"


def review_event(finding: ReviewFinding, link: str) -> AlertEvent:
    """A reviewer's finding: what, by whom, their words, and `link`, the session's page in the
    review app."""
    session, user = one_line(finding.session, 120), one_line(finding.user, 64) or "?"
    series = f"series {one_line(finding.series_number, 20) or '?'} ({one_line(finding.tag, 40) or '?'})"
    when = f"{finding.created:%Y-%m-%d %H:%M} UTC"
    if finding.kind == "decision":
        title = f"{session}: {series} blacklisted by {user}"
        lines = [f"{user} blacklisted {series} of session {session} on {when}: it is left out of exports and of "
                 f"gold-standard promotion.",
                 f"Reason: {one_line(finding.text) or 'none given'}.",
                 f"Next: look at it in the review app ({link}); ask the site for a re-scan if the series is needed; "
                 f"sign the session off when settled."]
    else:
        picture = picture_text(finding)
        title = f"{session}: {series} rated FAIL by {user}"
        issue = " (marked as an issue of the source data)" if finding.source_data_issue else ""
        lines = [f"{user} rated {picture + ' of ' if picture else ''}{series} of session {session} FAIL on "
                 f"{when}{issue}.",
                 f"Notes: {one_line(finding.text) or 'none'}.",
                 f"Next: look at it in the review app ({link}); blacklist the series or ask for a re-scan; sign the "
                 f"session off when settled."]
    key = f"{finding.session}:review:{finding.kind}-{finding.id}"
    return AlertEvent(key=key, session=finding.session, kind="review_failed", title=one_line(title, TITLE_LIMIT),
                      text="\n".join(lines), topic=key, ingested_at=local_from_utc(finding.created))


def recorded_since(events: Sequence[AlertEvent], since: datetime) -> list[AlertEvent]:
    return [e for e in events if e.ingested_at is not None and e.ingested_at >= since]


def alertable_events(store: MetricStore, since: datetime, session_page: Callable[[str], str]) -> list[AlertEvent]:
    """The events of sessions recorded (and of review findings made) at or after `since` (local
    time, as `ingested_at` is written): upgrades first (they concern a whole site), then
    sessions, then reviewers' findings, oldest first; `session_page(label)` is the URL of the
    session's page in the review app."""
    upgrades = recorded_since([upgrade_event(u) for u in software_upgrades(store)], since)
    sessions = [health_event(facts) for facts in sessions_needing_attention(store, since)]
    since_utc = since.astimezone(UTC).replace(tzinfo=None)  # a naive `since` is local time
    reviews = recorded_since([review_event(f, session_page(f.session)) for f in review_findings(store, since_utc)],
                             since)
    return upgrades + sessions + reviews
