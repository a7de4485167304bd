"""Every question the rest of the code asks the metric store, each a named function with a
typed answer. SQL lives here and nowhere else (tests may query the views directly)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date, datetime

from datman_flow.store.files import make_row
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.rows import CheckRow, SeriesRow, SessionRow


@dataclass(frozen=True)
class SessionSummary:
    """One row of the session_summary view: what the session is, how far it got, its health
    ('' until its run has finished) and the counts behind it."""

    session: str
    study: str
    site: str
    subject: str
    is_phantom: bool
    scan_date: date | None
    insert_date: datetime | None
    ingested_at: datetime | None
    status: str
    health: str  # ok | attention | failed | '' (not evaluated yet)
    health_reasons: str
    reason: str
    series: int
    converted: int
    failed_downloads: int
    failed_conversions: int
    checks_failed: int
    checks_not_evaluated: int
    qc_measured: int
    qc_failed: int
    qc_flagged: int


def summary_of(values: dict[str, object]) -> SessionSummary:
    """A typed summary from a view row: NULL text as '', NULL counts as 0."""
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(SessionSummary):
        value = values.get(f.name)
        if f.type == "str":
            value = "" if value is None else str(value)
        elif f.type == "int":
            value = int(value or 0)  # type: ignore[call-overload]
        elif f.type == "bool":
            value = bool(value)
        kwargs[f.name] = value
    return SessionSummary(**kwargs)  # type: ignore[arg-type]


def session_summaries(store: MetricStore, study: str | None = None) -> list[SessionSummary]:
    """Every recorded session (or those of one study) from the session_summary view, by label."""
    where, params = ("WHERE study = ?", [study]) if study is not None else ("", [])
    rows = store.query(f"SELECT * FROM session_summary {where} ORDER BY session", params)
    return [summary_of(row) for row in rows]


def recorded_checks(store: MetricStore, study: str | None = None) -> list[CheckRow]:
    """Every check outcome (or those of one study's sessions), by session, check, tag and series."""
    where, params = ("WHERE session IN (SELECT session FROM sessions WHERE study = ?)", [study]) \
        if study is not None else ("", [])
    rows = store.query(f"SELECT * FROM check_results {where} ORDER BY session, check_name, tag NULLS FIRST, series",
                       params)
    return [make_row(CheckRow, row) for row in rows]


def recorded_studies(store: MetricStore) -> list[str]:
    """The study codes of the recorded sessions, sorted."""
    rows = store.query("SELECT DISTINCT study FROM sessions WHERE coalesce(study, '') <> '' ORDER BY study")
    return [str(row["study"]) for row in rows]


def converted_series(store: MetricStore, session: str, tag: str) -> list[SeriesRow]:
    """The session's converted series of one tag, by series number."""
    rows = store.query("SELECT * FROM series WHERE session = ? AND tag = ? AND conversion_status = 'converted' "
                       "ORDER BY series_number", [session, tag])
    return [make_row(SeriesRow, row) for row in rows]


def parameter_history(store: MetricStore, study: str, site: str, tag: str, other_than: str,
                      phantom: bool) -> list[dict]:
    """Earlier sessions' scanner parameters for one site and tag (phantoms apart from
    participants), oldest first, leaving out the session `other_than`."""
    rows = store.query(
        "SELECT p.parameters FROM header_parameters p JOIN sessions s USING (session) "
        "WHERE p.study = ? AND p.site = ? AND p.tag = ? AND p.session <> ? AND s.is_phantom = ? "
        "ORDER BY s.scan_date, s.insert_date, p.session, p.series_number",
        [study, site, tag, other_than, phantom])
    return [json.loads(str(row["parameters"])) for row in rows]


@dataclass(frozen=True)
class CheckedSeries:
    """A session whose series of one tag had their parameters recorded (phantom tags marked)."""

    site: str
    tag: str  # 'T1', or 'T1 (phantom)'
    session: str


@dataclass(frozen=True)
class RecordedDiff:
    site: str
    tag: str  # 'T1', or 'T1 (phantom)'
    session: str
    field: str
    kind: str
    expected: object  # decoded JSON
    actual: object
    provisional: bool
    scan_date: str  # the session's scan date, else its insert_date


def checked_series(store: MetricStore, study: str) -> list[CheckedSeries]:
    """Each (site, tag, session) of the study whose parameters were recorded."""
    rows = store.query(
        "SELECT p.site, p.tag || CASE WHEN s.is_phantom THEN ' (phantom)' ELSE '' END AS tag, p.session "
        "FROM header_parameters p JOIN sessions s USING (session) WHERE p.study = ? GROUP BY ALL", [study])
    return [CheckedSeries(str(r["site"]), str(r["tag"]), str(r["session"])) for r in rows]


def unevaluated_series(store: MetricStore, study: str) -> list[CheckedSeries]:
    """Each (site, tag, session) of the study whose header check could not be evaluated (no
    gold standard and too short a history): neither complying nor drifted."""
    rows = store.query(
        "SELECT p.site, p.tag || CASE WHEN s.is_phantom THEN ' (phantom)' ELSE '' END AS tag, p.session "
        "FROM header_parameters p JOIN sessions s USING (session) "
        "JOIN check_results c ON c.session = p.session AND c.check_name = 'header_drift' AND c.tag = p.tag "
        "AND list_contains(c.series, p.series_number::VARCHAR) "
        "WHERE p.study = ? AND c.passed IS NULL GROUP BY ALL", [study])
    return [CheckedSeries(str(r["site"]), str(r["tag"]), str(r["session"])) for r in rows]


def recorded_diffs(store: MetricStore, study: str) -> list[RecordedDiff]:
    """Every header finding of the study, oldest scan first."""
    rows = store.query(
        "SELECT p.site, d.tag || CASE WHEN s.is_phantom THEN ' (phantom)' ELSE '' END AS tag, d.session, d.field, "
        "d.kind, d.expected, d.actual, d.provisional, coalesce(s.scan_date, s.insert_date::DATE) AS first_date "
        "FROM header_diffs d JOIN sessions s USING (session) "
        "JOIN (SELECT DISTINCT session, site FROM header_parameters WHERE study = ?) p USING (session) "
        "ORDER BY first_date, s.insert_date, d.session", [study])
    return [RecordedDiff(str(r["site"]), str(r["tag"]), str(r["session"]), str(r["field"]), str(r["kind"]),
                         json.loads(str(r["expected"])), json.loads(str(r["actual"])), bool(r["provisional"]),
                         str(r["first_date"] or "")) for r in rows]


def sessions_in_status_since(store: MetricStore, status: str, before: datetime) -> list[SessionRow]:
    """Sessions whose latest record has `status` and was written before `before` (local time,
    as `ingested_at` is written), oldest first."""
    rows = store.query("SELECT * FROM sessions WHERE status = ? AND ingested_at < ? ORDER BY ingested_at",
                       [status, before])
    return [make_row(SessionRow, row) for row in rows]
