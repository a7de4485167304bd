"""The index step: one record per series (tag or the reason it has none), recorded, and the
expected-series check of the session."""

from __future__ import annotations

from dataclasses import dataclass

from datman_flow.checks.expected_series import CHECK_NAME, ExpectedSeriesResult, check_expected_series
from datman_flow.dicom.index import index_session
from datman_flow.layout import DataLayout
from datman_flow.pipeline import persist
from datman_flow.pipeline.locks import session_lock
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.records import PulledSession, SeriesRecord


@dataclass(frozen=True)
class IndexedSession:
    series: list[SeriesRecord]
    check: ExpectedSeriesResult


def index_step(target: SessionTarget, layout: DataLayout, pulled: PulledSession) -> IndexedSession:
    with session_lock(layout, target.label, "the index"):
        series = index_session(pulled, target.rules)
        persist.record_series(layout, target.label, series)
        check = check_expected_series(target.label, series, target.rules)
        persist.record_checks(layout, target.label, CHECK_NAME, check.rows)
    return IndexedSession(series, check)
