"""The QC metrics of earlier sessions, for comparing a new series with its site's own history
(pipeline/outliers.py): one named query, with a typed answer.

A value belongs to the history of a series when its session is of the same study and site,
a phantom exactly when the series' session is one, is not that session itself, was scanned
before it (below), and its series has the same tag and scanner software (`SoftwareVersions` in
the series' `header_parameters`, recorded by the header check before QC runs).

"Before": the scan date (XNAT's session date, else the date of its insert_date) is earlier, or
the same day with an earlier insert_date. When the session's own dates are unknown, every other
recorded session counts; a session whose dates are unknown counts as earlier.

Cost: the views read every session's Parquet file of three tables (sessions, header_parameters,
qc_metrics), so the whole history of a session's series is asked for in ONE query (a few
(tag, software) pairs at once): with 1,000 earlier sessions this takes about 0.3 s on 2 cores
(benchmarks/outliers.py), most of it opening the 3,000 files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from datman_flow.store.metric_store import MetricStore
from datman_flow.store.schema import DATE_SQL, TIMESTAMP_SQL

SOFTWARE_FIELD = "SoftwareVersions"


@dataclass(frozen=True)
class HistoryKey:
    """Which earlier values are wanted: a tag, the scanner software its series must have been
    acquired with ('' when unknown: matches series whose parameters lack it) and the metrics."""

    tag: str
    software: str
    metrics: tuple[str, ...]


@dataclass(frozen=True)
class EarlierValue:
    """One metric of one series of an earlier session."""

    tag: str
    software: str
    metric: str
    session: str
    series_number: str
    value: float


_ME_DATE, _ME_INSERT = DATE_SQL.format(c="CAST($5 AS VARCHAR)"), TIMESTAMP_SQL.format(c="CAST($6 AS VARCHAR)")
_HISTORY_SQL = f"""
WITH me AS (SELECT {_ME_DATE} AS d, {_ME_INSERT} AS i),
wanted AS (SELECT unnest($7::VARCHAR[]) AS tag, unnest($8::VARCHAR[]) AS software, unnest($9::VARCHAR[]) AS metric),
earlier AS (
  SELECT s.session FROM sessions s, me
  WHERE s.study = $1 AND s.site = $2 AND s.is_phantom = $3 AND s.session <> $4
    AND (me.d IS NULL OR coalesce(s.scan_date, s.insert_date::DATE) IS NULL
         OR coalesce(s.scan_date, s.insert_date::DATE) < me.d
         OR (coalesce(s.scan_date, s.insert_date::DATE) = me.d AND s.insert_date < me.i))),
series AS (
  SELECT p.session, p.series_number, p.tag,
         coalesce(json_extract_string(p.parameters, '$.{SOFTWARE_FIELD}'), '') AS software
  FROM header_parameters p SEMI JOIN earlier USING (session)
  WHERE p.study = $1 AND p.site = $2 AND p.tag IN (SELECT tag FROM wanted))
SELECT r.tag, r.software, m.metric, m.session, m.series_number, m.value
FROM qc_metrics m
JOIN series r ON r.session = m.session AND r.series_number = m.series_number AND r.tag = m.tag
JOIN wanted w ON w.tag = r.tag AND w.software = r.software AND w.metric = m.metric
WHERE isfinite(m.value)
ORDER BY r.tag, r.software, m.metric, m.session, m.series_number
"""


def earlier_metric_values(store: MetricStore, study: str, site: str, keys: Sequence[HistoryKey], *, phantom: bool,
                          other_than: str, scan_date: str = "", insert_date: str = "") -> list[EarlierValue]:
    """The finite values of each key's metrics in earlier sessions of `study` and `site` (phantoms
    only with phantoms), never from the session `other_than`, in ONE query over the store.
    `scan_date` and `insert_date` are that session's, as the sessions table keeps them ('' when
    unknown)."""
    wanted = [(key.tag, key.software, metric) for key in keys for metric in dict.fromkeys(key.metrics)]
    if not wanted:
        return []
    tags, softwares, metrics = (list(column) for column in zip(*wanted))
    rows = store.query(_HISTORY_SQL, [study, site, phantom, other_than, scan_date or None, insert_date or None,
                                      tags, softwares, metrics])
    return [EarlierValue(str(r["tag"]), str(r["software"]), str(r["metric"]), str(r["session"]),
                         "" if r["series_number"] is None else str(r["series_number"]), float(r["value"]))  # type: ignore[arg-type]
            for r in rows]


def metric_history(store: MetricStore, study: str, site: str, tag: str, software: str, metrics: Sequence[str], *,
                   phantom: bool, other_than: str, scan_date: str = "",
                   insert_date: str = "") -> dict[str, list[EarlierValue]]:
    """metric -> its earlier values for one (tag, software): `earlier_metric_values` for one key."""
    found: dict[str, list[EarlierValue]] = {metric: [] for metric in metrics}
    for value in earlier_metric_values(store, study, site, [HistoryKey(tag, software, tuple(metrics))],
                                       phantom=phantom, other_than=other_than, scan_date=scan_date,
                                       insert_date=insert_date):
        found[value.metric].append(value)
    return found
