"""The QC metrics of earlier sessions, for comparing a new series with its site's own history
(pipeline/outliers.py): one named query, with a typed answer.

A value belongs to the history of a series when its session is of the same study and site,
a phantom exactly when the series' session is one, is not that session itself, was scanned
before it (below), and its series has the same tag and scanner software (`SoftwareVersions` in
the series' `header_parameters`, recorded by the header check before QC runs).

"Before": the scan date (XNAT's session date, else the date of its insert_date) is earlier, or
the same day with an earlier insert_date. When the session's own dates are unknown, every other
recorded session counts; a session whose dates are unknown counts as earlier.

Cost: the query reads every session's Parquet file of three tables (sessions, header_parameters,
qc_metrics), and opening the files is most of its time; so the whole history of a session's
series is asked for in ONE query (several (tag, software) pairs at once), reading only the
columns it needs straight from the files (no union_by_name pass over every file's schema; through
the views if some file lacks one of those columns). benchmarks/outliers.py times it with 1,000
earlier sessions (3,000 files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from datman_flow.store.metric_store import MetricStore
from datman_flow.store.schema import DATE_SQL, TIMESTAMP_SQL

# What rows without a metric_convention were measured with (qc/settings.py's LEGACY_CONVENTION:
# the store imports nothing above it, tests/test_qc_convention.py holds the two equal).
LEGACY_CONVENTION = "mriqc22"
LEGACY_ENGINE = "builtin"  # the only T1w engine before `qc: {anat_engine: ...}`


def convention_sql(alias: str) -> str:
    """The MRIQC convention of a qc_metrics row `alias` in SQL (rows without one: LEGACY_CONVENTION)."""
    return f"coalesce({alias}.metric_convention, '{LEGACY_CONVENTION}')"


def engine_sql(alias: str) -> str:
    """The T1w engine of a qc_metrics row `alias` in SQL (rows without one: LEGACY_ENGINE)."""
    return f"coalesce({alias}.anat_engine, '{LEGACY_ENGINE}')"

SOFTWARE_FIELD = "SoftwareVersions"


@dataclass(frozen=True)
class HistoryKey:
    """Which earlier values are wanted: a tag, the scanner software its series must have been
    acquired with ('' when unknown: matches series whose parameters lack it) and the metrics."""

    tag: str
    software: str
    metrics: tuple[str, ...]
    convention: str | None = None  # only history measured under this MRIQC convention (None: any)
    engine: str | None = None  # and by this T1w engine (None: any; a row without one: LEGACY_ENGINE)


@dataclass(frozen=True)
class MetricHistory:
    """The earlier values of one key's metrics."""

    values: Mapping[str, tuple[float, ...]]  # metric -> its finite values, one per earlier series of the tag
    metric_sessions: Mapping[str, int]  # metric -> the earlier sessions its values come from
    sessions: int  # the earlier sessions with any of the key's metrics


def _date(column: str) -> str:
    return DATE_SQL.format(c=f"CAST({column} AS VARCHAR)")


def _timestamp(column: str) -> str:
    return TIMESTAMP_SQL.format(c=f"CAST({column} AS VARCHAR)")


def _files(parquet_dir: Path | None, table: str) -> str:
    """Where a table is read from: with `parquet_dir`, its Parquet files as a plain glob (DuckDB
    matches each file's columns by name), which skips the views' union_by_name pass over every
    file's schema (a quarter of the query's time with 1,000 sessions) and holds as long as every
    file has the columns the query reads; without, the table's view."""
    if parquet_dir is None:
        return f'"{table}"'
    pattern = str((parquet_dir / table).resolve() / "*.parquet").replace("'", "''")
    return f"read_parquet('{pattern}')"


def _history_sql(parquet_dir: Path | None) -> str:
    """$1 study, $2 site, $3 phantom, $4 the session itself, $5/$6 its scan and insert dates
    (text, NULL when unknown), $7/$8/$9/$10/$11 the wanted (tag, software, metric, convention,
    engine) as 5 lists (a NULL convention or engine takes any; a row without one was measured as
    LEGACY_CONVENTION by LEGACY_ENGINE)."""
    first = "coalesce(s.d, s.i::DATE)"
    return f"""
WITH me AS (SELECT {_date("$5")} AS d, {_timestamp("$6")} AS i),
wanted AS (SELECT unnest($7::VARCHAR[]) AS tag, unnest($8::VARCHAR[]) AS software, unnest($9::VARCHAR[]) AS metric,
                  unnest($10::VARCHAR[]) AS convention, unnest($11::VARCHAR[]) AS engine),
earlier AS (
  SELECT s.session
  FROM (SELECT session, {_date("scan_date")} AS d, {_timestamp("insert_date")} AS i
        FROM {_files(parquet_dir, "sessions")}
        WHERE study = $1 AND site = $2 AND is_phantom = $3 AND session <> $4) s, me
  WHERE me.d IS NULL OR {first} IS NULL OR {first} < me.d OR ({first} = me.d AND s.i < me.i)),
series AS (
  SELECT p.session, p.series_number, p.tag,
         coalesce(json_extract_string(p.parameters, '$.{SOFTWARE_FIELD}'), '') AS software
  FROM {_files(parquet_dir, "header_parameters")} p SEMI JOIN earlier USING (session)
  WHERE p.study = $1 AND p.site = $2 AND p.tag IN (SELECT tag FROM wanted))
SELECT r.tag, r.software, m.metric, count(DISTINCT m.session) AS sessions,
       CASE WHEN grouping(m.metric) = 0 THEN list(m.value) END AS "values"
FROM {_files(parquet_dir, "qc_metrics")} m
JOIN series r ON r.session = m.session AND r.series_number = m.series_number AND r.tag = m.tag
JOIN wanted w ON w.tag = r.tag AND w.software = r.software AND w.metric = m.metric
WHERE isfinite(m.value)
  AND (w.convention IS NULL OR {convention_sql("m")} = w.convention)
  AND (w.engine IS NULL OR {engine_sql("m")} = w.engine)
GROUP BY GROUPING SETS ((r.tag, r.software, m.metric), (r.tag, r.software))
"""


def metric_history(store: MetricStore, study: str, site: str, keys: Sequence[HistoryKey], *, phantom: bool,
                   other_than: str, scan_date: str = "", insert_date: str = "") -> dict[HistoryKey, MetricHistory]:
    """For each key, the finite values of its metrics in the earlier sessions of `study` and `site`
    (phantoms only with phantoms), never from the session `other_than`, in ONE query over the
    store (the values aggregated there: one row per metric). `scan_date` and `insert_date` are that
    session's, as the sessions table keeps them ('' when unknown)."""
    wanted = list(dict.fromkeys((key.tag, key.software, metric, key.convention, key.engine)
                                for key in keys for metric in key.metrics))
    if not wanted:
        return {key: MetricHistory({}, {}, 0) for key in keys}
    tags, softwares, metrics, conventions, engines = (list(column) for column in zip(*wanted))
    params = [study, site, phantom, other_than, scan_date or None, insert_date or None, tags, softwares, metrics,
              conventions, engines]
    try:
        rows = store.query(_history_sql(store.parquet_dir), params)
    except duckdb.Error as exc:
        if "schema mismatch" not in str(exc) and not isinstance(exc, duckdb.BinderException):
            raise
        rows = store.query(_history_sql(None), params)  # a file lacks a column read: through the views
    found: dict[tuple[str, str], dict[str | None, dict[str, object]]] = {}
    for row in rows:
        found.setdefault((str(row["tag"]), str(row["software"])), {})[row["metric"]] = row  # type: ignore[index]
    out = {}
    for key in keys:
        by_metric = found.get((key.tag, key.software), {})
        mine = {str(m): r for m, r in by_metric.items() if m in key.metrics}
        out[key] = MetricHistory({m: tuple(r["values"]) for m, r in mine.items()},  # type: ignore[call-overload]
                                 {m: int(r["sessions"]) for m, r in mine.items()},  # type: ignore[call-overload]
                                 int(by_metric.get(None, {}).get("sessions", 0)))  # type: ignore[call-overload]
    return out
