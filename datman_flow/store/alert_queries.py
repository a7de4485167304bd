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


@dataclass(frozen=True)
class ReviewFinding:
    """A picture whose latest rating is FAIL, or a series whose latest decision is `blacklisted`."""

    kind: str  # rating | decision
    id: int  # the rating's or the decision's id (one counter per table)
    session: str
    series_number: str
    tag: str
    user: str
    text: str  # the rating's notes, the decision's reason
    created: datetime  # naive UTC, as the review tables keep it
    display: int | None = None  # the rated picture's orientation and slice
    slice: int | None = None
    source_data_issue: bool = False


# FAIL is 2 on django-qcapp-ratings' scale (review/scales.py); the latest row per picture (per
# series for decisions) counts, as in pipeline/review_state.py.
REVIEW_FINDINGS_SQL = """
WITH last_rating AS (
    SELECT * FROM ratings QUALIFY row_number() OVER (PARTITION BY img_id ORDER BY id DESC) = 1),
last_decision AS (
    SELECT * FROM series_decisions
    QUALIFY row_number() OVER (PARTITION BY scan_session, series_number ORDER BY id DESC) = 1)
SELECT 'rating' AS kind, r.id, r.scan_session AS session, i.series_number::VARCHAR AS series_number, i.tag,
       r."user", r.notes AS text, r.created, i.display, i.slice, r.source_data_issue
FROM last_rating r LEFT JOIN rating_images i ON i.id = r.img_id
WHERE r.rating = 2 AND r.created >= ?
UNION ALL
SELECT 'decision', d.id, d.scan_session, d.series_number::VARCHAR, d.tag, d."user", d.reason, d.created, NULL, NULL,
       false
FROM last_decision d
WHERE d.decision = 'blacklisted' AND d.created >= ?
ORDER BY created, kind, id
"""


def review_findings(store: MetricStore, since_utc: datetime) -> list[ReviewFinding]:
    """Every current review finding made at or after `since_utc` (naive UTC), oldest first."""
    rows = store.query(REVIEW_FINDINGS_SQL, [since_utc, since_utc])
    return [ReviewFinding(
        kind=_text(r["kind"]), id=_int(r["id"]), session=_text(r["session"]), series_number=_text(r["series_number"]),
        tag=_text(r["tag"]), user=_text(r["user"]), text=_text(r["text"]), created=r["created"],  # type: ignore[arg-type]
        display=None if r["display"] is None else _int(r["display"]),
        slice=None if r["slice"] is None else _int(r["slice"]),
        source_data_issue=bool(r["source_data_issue"])) for r in rows if isinstance(r["created"], datetime)]
