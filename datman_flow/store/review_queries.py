"""The store's answers for the review app's session page: a session's rows of many tables at
once, and what a metric usually is at a site.

Reading one session's file of one table is quick (a few ms) but opening DuckDB is not (40-60 ms
on a busy machine): a `SessionReader` keeps one in-memory DuckDB open for the app's life and
reads every file a page needs through a cursor of it.

A reviewer looking at a series' key metrics wants the site's usual value beside each: the median
of the same metric over the other sessions of the same study, site and tag (phantoms with
phantoms). One query gathers every (study, site, phantom, tag, metric) group's values at once,
sorted (2-3 s with 2,000 sessions); `SiteMetricValues` keeps the answer in memory and asks again
only when the listing of the qc_metrics folder changed (a session measured, re-run or removed),
in a background thread while pages go on with the previous answer (only the very first answer
is waited for). A page view costs one folder listing and a few list operations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from datman_flow.store.files import make_row, session_file_name
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.qc_queries import LEGACY_CONVENTION, LEGACY_ENGINE, convention_sql, engine_sql
from datman_flow.store.schema import table_of
from datman_flow.store.table_cache import Signature, listing

GroupKey = tuple[str, str, bool, str, str, str]  # study, site, is_phantom, tag, metric, basis (measure_basis)
Wanted = tuple[type, str | None]  # a row type, and the part of its table (check_results: the check) or None
FIRST_ANSWER_WAIT = 60.0  # seconds a page waits for the medians' first answer (later ones are not waited for)
logger = logging.getLogger(__name__)


class SessionReader:
    """`reader.rows(label, wanted)`: the session's rows of each (row type, part), as
    MetricStore.read gives them, through one long-lived DuckDB (a cursor per call: safe from
    several threads). A file that does not read goes through MetricStore.read, which moves it
    to the quarantine (its rows are then [])."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store
        self._con = duckdb.connect()
        self._lock = threading.Lock()

    def rows(self, label: str, wanted: Sequence[Wanted]) -> dict[Wanted, list]:
        out: dict[Wanted, list] = {}
        with self._lock:
            cursor = self._con.cursor()
        with cursor:
            for row_type, part in wanted:
                path = self.store.parquet_dir / table_of(row_type) / session_file_name(label, part)
                if not path.exists():
                    out[(row_type, part)] = []
                    continue
                try:
                    result = cursor.execute("SELECT * FROM read_parquet(?)", [str(path)])
                    names = [d[0] for d in result.description]
                    out[(row_type, part)] = [make_row(row_type, dict(zip(names, values)))
                                             for values in result.fetchall()]
                except duckdb.Error:
                    out[(row_type, part)] = self.store.read(row_type, label, part)
        return out


@dataclass(frozen=True)
class GroupValues:
    """One group's finite values, ascending, each with the session it comes from."""

    values: tuple[float, ...]
    sessions: tuple[str, ...]


@dataclass(frozen=True)
class SiteMedian:
    median: float | None  # None: no other session has the metric
    sessions: int  # the other sessions the median is over


def _source(store: MetricStore, table: str, direct: bool) -> str:
    """A table's Parquet files straight (faster: no union_by_name pass over every file's schema),
    or its view when some file lacks a column the query reads."""
    if not direct:
        return f'"{table}"'
    pattern = str((store.parquet_dir / table).resolve() / "*.parquet").replace("'", "''")
    return f"read_parquet('{pattern}')"


def measure_basis(qc_type: str | None, convention: str | None, engine: str | None) -> str:
    """What a series' metrics are comparable with: a T1w's MRIQC convention and engine (their
    values differ by tens of percent between them; rows without them are LEGACY_*), '' for BOLD
    and DWI, whose metrics do not depend on either."""
    if qc_type != "anat":
        return ""
    return f"{convention or LEGACY_CONVENTION}/{engine or LEGACY_ENGINE}"


def _values_sql(store: MetricStore, direct: bool) -> str:
    return f"""
SELECT s.study, s.site, coalesce(s.is_phantom, false) AS is_phantom, m.tag, m.metric,
       CASE WHEN q.qc_type = 'anat' THEN {convention_sql("m")} || '/' || {engine_sql("m")} ELSE '' END AS basis,
       list(m.value ORDER BY m.value, m.session) AS "values", list(m.session ORDER BY m.value, m.session) AS sessions
FROM {_source(store, "qc_metrics", direct)} m JOIN {_source(store, "sessions", direct)} s ON s.session = m.session
LEFT JOIN (SELECT DISTINCT session, series_number, tag, qc_type FROM {_source(store, "qc_series", direct)}) q
       ON q.session = m.session AND q.series_number = m.series_number AND q.tag = m.tag
WHERE isfinite(m.value) AND coalesce(s.study, '') <> '' AND coalesce(s.site, '') <> ''
GROUP BY ALL
"""


def site_metric_values(store: MetricStore) -> dict[GroupKey, GroupValues]:
    """Every (study, site, phantom, tag, metric, basis) group's finite values, in ONE query
    (straight from the files, without a progress bar; through the views if a file lacks a column)."""
    try:
        with duckdb.connect() as con:
            con.execute("SET enable_progress_bar = false")
            cursor = con.execute(_values_sql(store, direct=True))
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, values)) for values in cursor.fetchall()]
    except duckdb.Error as exc:
        if ("schema mismatch" not in str(exc) and "No files found" not in str(exc)
                and not isinstance(exc, duckdb.BinderException)):
            raise
        rows = store.query(_values_sql(store, direct=False))
    return {(str(r["study"]), str(r["site"]), bool(r["is_phantom"]), str(r["tag"]), str(r["metric"]), str(r["basis"])):
            GroupValues(tuple(float(v) for v in r["values"]), tuple(str(s) for s in r["sessions"]))  # type: ignore[union-attr]
            for r in rows}


def median_of(sorted_values: Sequence[float]) -> float | None:
    n = len(sorted_values)
    if n == 0:
        return None
    middle = n // 2
    return sorted_values[middle] if n % 2 else (sorted_values[middle - 1] + sorted_values[middle]) / 2


class SiteMetricValues:
    """`values.medians(study, site, phantom, tag, metrics, other_than=label)`: the site's median
    of each metric over its other sessions. One per app, shared by its threads."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._signature: dict[str, Signature] | None = None  # the listing the answer is of
        self._groups: dict[GroupKey, GroupValues] = {}
        self._running: threading.Thread | None = None
        self.queries = 0  # answers computed (tests check it is not once per page)

    def _compute(self, signature: dict[str, Signature]) -> None:
        try:
            groups = site_metric_values(self.store) if signature else {}
        except Exception:  # noqa: BLE001 - the pages go on without medians; the next page asks again
            logger.exception("the site medians could not be computed from %s", self.store.parquet_dir)
            groups = None
        with self._lock:
            if groups is not None:
                self._groups, self._signature = groups, signature
                self.queries += 1
            self._running = None

    def refresh(self, wait: bool = False) -> None:
        """Start computing again if the qc_metrics folder changed; `wait`: until it is done."""
        signature = listing(self.store.parquet_dir / "qc_metrics")
        with self._lock:
            if signature != self._signature and self._running is None:
                self._running = threading.Thread(target=self._compute, args=(signature,), name="site-medians",
                                                 daemon=True)
                self._running.start()
            running = self._running if wait or self._signature is None else None
        if running is not None:
            running.join(FIRST_ANSWER_WAIT)

    def medians(self, study: str, site: str, phantom: bool, tag: str, metrics: Sequence[str],
                other_than: str, basis: str = "") -> dict[str, SiteMedian]:
        """The medians over the site's other sessions measured on the same ``basis`` (measure_basis)."""
        self.refresh()
        with self._lock:
            groups = self._groups
        out = {}
        for metric in metrics:
            group = groups.get((study, site, phantom, tag, metric, basis))
            if group is None:
                out[metric] = SiteMedian(None, 0)
                continue
            others = [v for v, s in zip(group.values, group.sessions) if s != other_than]
            out[metric] = SiteMedian(median_of(others), len({s for s in group.sessions if s != other_than}))
        return out
