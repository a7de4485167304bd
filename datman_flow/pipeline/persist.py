"""Writing a session's results to the metric store as typed rows (each call replaces that
session's rows of one table, or of one part of it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from datman_flow.layout import DataLayout
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.records import PulledSession, SeriesRecord
from datman_flow.store import CheckRow, SeriesRow, SessionRow


def now() -> datetime:
    return datetime.now().replace(microsecond=0)


def session_row(target: SessionTarget, pulled: PulledSession | None, status: str, reason: str = "") -> SessionRow:
    sid = target.scan_id
    return SessionRow(
        session=sid.label, study=sid.study, site=sid.site, subject=sid.subject, timepoint=sid.timepoint,
        repeat=sid.repeat, is_phantom=sid.is_phantom,
        xnat_project=pulled.xnat_project if pulled else target.site.xnat_project,
        xnat_id=pulled.xnat_id if pulled else "", insert_date=pulled.insert_date if pulled else "",
        scan_date=pulled.scan_date if pulled else "", ingested_at=now(), status=status, reason=reason)


def rejected_row(label: str, xnat_project: str, xnat_id: str, insert_date: str, reason: str) -> SessionRow:
    return SessionRow(session=label, xnat_project=xnat_project, xnat_id=xnat_id, insert_date=insert_date,
                      ingested_at=now(), status="rejected", reason=reason)


def series_row(record: SeriesRecord) -> SeriesRow:
    """The series table's columns of a record (a column the record lacks is an AttributeError)."""
    return SeriesRow(**{f.name: getattr(record, f.name) for f in dataclasses.fields(SeriesRow)})


def record_session(layout: DataLayout, row: SessionRow) -> None:
    layout.metric_store.replace(SessionRow, row.session, [row])


def record_series(layout: DataLayout, session: str, records: Sequence[SeriesRecord]) -> None:
    layout.metric_store.replace(SeriesRow, session, [series_row(r) for r in records])


def record_checks(layout: DataLayout, session: str, check_name: str, rows: Sequence[CheckRow]) -> None:
    """Replace this session's rows of one check (other checks' rows are in their own file)."""
    layout.metric_store.replace(CheckRow, session, rows, part=check_name)


def record_rows(layout: DataLayout, row_type: type, session: str, rows: Sequence[object]) -> None:
    layout.metric_store.replace(row_type, session, rows)
