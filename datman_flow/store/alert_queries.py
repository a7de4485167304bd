"""The store's answers for alerts (alerts/events.py): sessions whose health needs a person, and
scanner software upgrades, each grouped to the first session that showed it. SQL only here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from datman_flow.store.metric_store import MetricStore
from datman_flow.store.queries import SessionSummary, summary_of


@dataclass(frozen=True)
class SoftwareUpgrade:
    """A new scanner software version at a study's site, as first seen (earliest scan)."""

    study: str
    site: str
    version: object  # the new SoftwareVersions value (decoded JSON: text, or a list of texts)
    previous: object  # the reference's value it differs from, in the first session
    session: str  # the first session that showed it
    is_phantom: bool
    scan_date: str  # of that session, YYYY-MM-DD or ''
    ingested_at: datetime | None  # of that session
    series: tuple[tuple[str, str], ...]  # (series number, tag) of the first session's series that showed it
    sessions: int  # how many sessions show it so far

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags of `series`, each once, in series order."""
        return tuple(dict.fromkeys(tag for _, tag in self.series))


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _int(value: object) -> int:
    return int(value or 0)  # type: ignore[call-overload]


def _json(text: object) -> object:
    try:
        return json.loads(str(text))
    except (TypeError, ValueError):
        return _text(text)


def sessions_needing_attention(store: MetricStore, since: datetime) -> list[SessionSummary]:
    """Sessions recorded (ingested_at) at or after `since` whose health is attention or failed,
    oldest first."""
    rows = store.query("SELECT * FROM session_summary WHERE health IN ('attention', 'failed') AND ingested_at >= ? "
                       "ORDER BY ingested_at, session", [since])
    return [summary_of(row) for row in rows]


SOFTWARE_UPGRADES_SQL = """
WITH per_session AS (
    SELECT s.study, s.site, d.actual, d.session, bool_or(coalesce(s.is_phantom, false)) AS is_phantom,
           min(d.expected) AS expected,
           list(DISTINCT [d.series_number::VARCHAR, d.tag] ORDER BY [d.series_number::VARCHAR, d.tag]) AS series,
           min(s.scan_date) AS scan_date, min(s.insert_date) AS insert_date, max(s.ingested_at) AS ingested_at
    FROM header_diffs d JOIN sessions s USING (session)
    WHERE d.kind = 'software_upgrade'
    GROUP BY s.study, s.site, d.actual, d.session)
SELECT *, count(*) OVER (PARTITION BY study, site, actual) AS sessions
FROM per_session
QUALIFY row_number() OVER (PARTITION BY study, site, actual
                           ORDER BY scan_date NULLS LAST, insert_date NULLS LAST, session) = 1
ORDER BY scan_date NULLS LAST, insert_date NULLS LAST, session, actual
"""


def series_pairs(value: object) -> tuple[tuple[str, str], ...]:
    """[[number, tag], ...] as (number, tag) pairs, by series number (as a number where it is one)."""
    pairs = [(_text(p[0]), _text(p[1])) for p in value or ()]  # type: ignore[union-attr]
    return tuple(sorted(pairs, key=lambda p: (not p[0].isdigit(), int(p[0]) if p[0].isdigit() else 0, p)))


def software_upgrades(store: MetricStore) -> list[SoftwareUpgrade]:
    """Every scanner software version that differed from its reference, one per study, site and
    version, with the first session (by scan date, then XNAT's insert date) that showed it."""
    rows = store.query(SOFTWARE_UPGRADES_SQL)
    return [SoftwareUpgrade(
        study=_text(r["study"]), site=_text(r["site"]), version=_json(r["actual"]), previous=_json(r["expected"]),
        session=_text(r["session"]), is_phantom=bool(r["is_phantom"]), scan_date=_text(r["scan_date"]),
        ingested_at=r["ingested_at"] if isinstance(r["ingested_at"], datetime) else None,
        series=series_pairs(r["series"]),
        sessions=_int(r["sessions"])) for r in rows]
