"""The store's answers for the review app's session page: a session's rows of many tables at
once, and what a metric usually is at a site.

Reading one session's file of one table is quick (a few ms) but opening DuckDB is not (40-60 ms
on a busy machine): `session_rows` reads every file a page needs through ONE connection.

A reviewer looking at a series' key metrics wants the site's usual value beside each: the
median of the same metric over the other sessions of the same study, site and tag (phantoms
with phantoms). One query gathers every (study, site, phantom, tag, metric) group's values at
once, sorted; `SiteMetricValues` keeps the answer in memory and asks again only when the listing
of the qc_metrics or sessions folder changed (a session measured, re-run or removed), so a page
view costs two folder listings and a few list operations, not a query over 2,000 files.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from datman_flow.store.files import make_row, session_file_name
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.schema import table_of
from datman_flow.store.table_cache import Signature, listing

GroupKey = tuple[str, str, bool, str, str]  # study, site, is_phantom, tag, metric
Wanted = tuple[type, str | None]  # a row type, and the part of its table (check_results: the check) or None


def session_rows(store: MetricStore, label: str, wanted: Sequence[Wanted]) -> dict[Wanted, list]:
    """The session's rows of each (row type, part) in `wanted`, as MetricStore.read gives them,
    read with one DuckDB connection. A file that does not read goes through MetricStore.read,
    which moves it to the quarantine (its rows are then [])."""
    out: dict[Wanted, list] = {}
    with duckdb.connect() as con:
        for row_type, part in wanted:
            path = store.parquet_dir / table_of(row_type) / session_file_name(label, part)
            if not path.exists():
                out[(row_type, part)] = []
                continue
            try:
                cursor = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
                names = [d[0] for d in cursor.description]
                out[(row_type, part)] = [make_row(row_type, dict(zip(names, values))) for values in cursor.fetchall()]
            except duckdb.Error:
                out[(row_type, part)] = store.read(row_type, label, part)
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


def _values_sql(store: MetricStore, direct: bool) -> str:
    return f"""
SELECT s.study, s.site, coalesce(s.is_phantom, false) AS is_phantom, m.tag, m.metric,
       list(m.value ORDER BY m.value, m.session) AS "values", list(m.session ORDER BY m.value, m.session) AS sessions
FROM {_source(store, "qc_metrics", direct)} m JOIN {_source(store, "sessions", direct)} s ON s.session = m.session
WHERE isfinite(m.value) AND coalesce(s.study, '') <> '' AND coalesce(s.site, '') <> ''
GROUP BY ALL
"""


def site_metric_values(store: MetricStore) -> dict[GroupKey, GroupValues]:
    """Every (study, site, phantom, tag, metric) group's finite values, in ONE query."""
    try:
        rows = store.query(_values_sql(store, direct=True))
    except duckdb.Error as exc:
        if "schema mismatch" not in str(exc) and "No files found" not in str(exc):
            raise
        rows = store.query(_values_sql(store, direct=False))
    return {(str(r["study"]), str(r["site"]), bool(r["is_phantom"]), str(r["tag"]), str(r["metric"])):
            GroupValues(tuple(float(v) for v in r["values"]), tuple(str(s) for s in r["sessions"]))  # type: ignore[union-attr]
            for r in rows}


def median_of(sorted_values: Sequence[float]) -> float | None:
    n = len(sorted_values)
    if n == 0:
        return None
    middle = n // 2
    return sorted_values[middle] if n % 2 else (sorted_values[middle - 1] + sorted_values[middle]) / 2


class SiteMetricValues:
    """`values.median(study, site, phantom, tag, metric, other_than=label)`: the site's median of
    a metric over its other sessions. Kept by the review app (one per app, shared by its threads);
    the query runs again only when the qc_metrics or sessions folder's listing changed."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._signature: tuple[dict[str, Signature], dict[str, Signature]] | None = None
        self._groups: dict[GroupKey, GroupValues] = {}
        self.queries = 0  # how many times the query ran (tests check it is not once per page)

    def _current(self) -> dict[GroupKey, GroupValues]:
        with self._lock:
            signature = (listing(self.store.parquet_dir / "qc_metrics"), listing(self.store.parquet_dir / "sessions"))
            if signature != self._signature:
                self._groups = site_metric_values(self.store) if signature[0] and signature[1] else {}
                self._signature = signature
                self.queries += 1
            return self._groups

    def median(self, study: str, site: str, phantom: bool, tag: str, metric: str, other_than: str) -> SiteMedian:
        return self.medians(study, site, phantom, tag, [metric], other_than)[metric]

    def medians(self, study: str, site: str, phantom: bool, tag: str, metrics: Sequence[str],
                other_than: str) -> dict[str, SiteMedian]:
        """The medians of several metrics of one series (one look at the listings)."""
        groups = self._current()
        out = {}
        for metric in metrics:
            group = groups.get((study, site, phantom, tag, metric))
            if group is None:
                out[metric] = SiteMedian(None, 0)
                continue
            others = [v for v, s in zip(group.values, group.sessions) if s != other_than]
            out[metric] = SiteMedian(median_of(others), len({s for s in group.sessions if s != other_than}))
        return out
