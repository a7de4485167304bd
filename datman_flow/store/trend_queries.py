"""The question the QC trends ask the metric store: the long metric table of some studies, tags
and metrics with each session's date, scanner software and outlier flags, in one query (it reads
every session's Parquet files of five tables: one pass over them, not two). SQL lives here only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from datman_flow.store.metric_store import MetricStore
from datman_flow.store.qc_queries import LEGACY_CONVENTION, convention_sql

# The scanner software of each session: SoftwareVersions from its recorded header parameters,
# else the new version of a 'software_upgrade' header finding. A parameter text that is not
# JSON counts as unknown software (the drift check reports it), never as a failed query.
SOFTWARE_SQL = """
params AS (SELECT session, min(json_extract_string(parameters, '$.SoftwareVersions')) AS software
           FROM header_parameters WHERE json_valid(parameters) GROUP BY session),
upgrades AS (SELECT session, min(json_extract_string(actual, '$')) AS software
             FROM header_diffs WHERE kind = 'software_upgrade' AND json_valid(actual) GROUP BY session),
software AS (SELECT session, coalesce(p.software, u.software) AS software
             FROM params p FULL JOIN upgrades u USING (session))
"""
OUTLIER_BASES = ("site history", "typical range")
DATE_SQL = "coalesce(s.scan_date, s.insert_date::DATE)"  # the scan date, else XNAT's insert date


@dataclass(frozen=True)
class MetricPoint:
    """One metric of one series, with what the trends plot it against."""

    study: str
    site: str
    session: str
    is_phantom: bool
    scan_date: date | None  # the session's scan date, else its insert date (None: neither parses)
    tag: str
    series_number: int | None
    metric: str
    value: float
    software: str  # the session's scanner software ('' unknown)
    flagged: str  # the outlier flags' bases ('site history', 'typical range'), '' when not flagged
    convention: str = LEGACY_CONVENTION  # the MRIQC convention it was measured under


def software_text(value: object) -> str:
    """SoftwareVersions as a person reads it (a JSON list, as some scanners write it, joined)."""
    text = "" if value is None else str(value)
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            return text
        return " ".join(str(item) for item in items) if isinstance(items, list) else text
    return text


def metric_history(store: MetricStore, studies: Sequence[str], tags: Sequence[str],
                   metrics: Sequence[str]) -> list[MetricPoint]:
    """Every recorded value of `metrics` for series of `tags` in sessions of `studies`, by study,
    site, tag, phantom or not, date, session and series."""
    rows = store.query(
        f"WITH {SOFTWARE_SQL}, "
        "flags AS (SELECT session, series_number, tag, metric, "
        "string_agg(DISTINCT basis, ', ' ORDER BY basis) AS basis "
        "FROM qc_flags WHERE list_contains(?::VARCHAR[], basis) GROUP BY ALL) "
        f"SELECT s.study, s.site, m.session, coalesce(s.is_phantom, false) AS is_phantom, {DATE_SQL} AS scan_date, "
        "m.tag, m.series_number, m.metric, m.value, coalesce(w.software, '') AS software, "
        f"coalesce(f.basis, '') AS flagged, {convention_sql('m')} AS convention "
        "FROM qc_metrics m JOIN sessions s USING (session) LEFT JOIN software w USING (session) "
        "LEFT JOIN flags f ON f.session = m.session AND f.series_number IS NOT DISTINCT FROM m.series_number "
        "AND f.tag = m.tag AND f.metric = m.metric "
        "WHERE list_contains(?::VARCHAR[], s.study) AND list_contains(?::VARCHAR[], m.tag) "
        "AND list_contains(?::VARCHAR[], m.metric) "
        "ORDER BY s.study, s.site, m.tag, is_phantom, scan_date NULLS LAST, s.insert_date, m.session, "
        "m.series_number, m.metric",
        [list(OUTLIER_BASES), list(studies), list(tags), list(metrics)])
    return [MetricPoint(str(r["study"]), str(r["site"]), str(r["session"]), bool(r["is_phantom"]),
                        r["scan_date"], str(r["tag"]),  # type: ignore[arg-type]
                        None if r["series_number"] is None else int(r["series_number"]),  # type: ignore[arg-type]
                        str(r["metric"]), float(r["value"]),  # type: ignore[arg-type]
                        software_text(r["software"]), str(r["flagged"]), str(r["convention"])) for r in rows]
