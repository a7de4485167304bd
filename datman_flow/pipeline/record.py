"""Writing a session's rows to the metric store (each call replaces that session's rows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from datman_flow.layout import DataLayout
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.records import CheckRecord, PulledSession, SeriesRecord, SessionRecord
from datman_flow.store import replace_session_rows


def now() -> datetime:
    return datetime.now().replace(microsecond=0)


def session_record(target: SessionTarget, pulled: PulledSession | None, status: str, reason: str = "") -> SessionRecord:
    sid = target.scan_id
    return SessionRecord(
        session=sid.label, study=sid.study, site=sid.site, subject=sid.subject, timepoint=sid.timepoint,
        repeat=sid.repeat, is_phantom=sid.is_phantom,
        xnat_project=pulled.xnat_project if pulled else target.site.xnat_project,
        xnat_id=pulled.xnat_id if pulled else "", insert_date=pulled.insert_date if pulled else "",
        scan_date=pulled.scan_date if pulled else "",
        ingested_at=now().isoformat(sep=" "), status=status, reason=reason)


def rejected_record(label: str, xnat_project: str, xnat_id: str, insert_date: str, reason: str) -> SessionRecord:
    return SessionRecord(session=label, study="", site="", subject="", timepoint=None, repeat=None,
                         is_phantom=False, xnat_project=xnat_project, xnat_id=xnat_id, insert_date=insert_date,
                         ingested_at=now().isoformat(sep=" "), status="rejected", reason=reason)


def record_session(layout: DataLayout, record: SessionRecord) -> None:
    replace_session_rows(layout.store, "sessions", record.session, [record.as_row()])


def record_series(layout: DataLayout, session: str, records: Sequence[SeriesRecord]) -> None:
    replace_session_rows(layout.store, "series", session, [r.as_row() for r in records])


def record_checks(layout: DataLayout, session: str, check_name: str, rows: Sequence[CheckRecord]) -> None:
    """Replace this session's rows of one check (other checks' rows are in their own file)."""
    replace_session_rows(layout.store, "check_results", session, [r.as_row() for r in rows], part=check_name)


def record_rows(layout: DataLayout, table: str, session: str, rows: Sequence[dict[str, object]]) -> None:
    replace_session_rows(layout.store, table, session, rows)


def session_status(series: Sequence[SeriesRecord]) -> tuple[str, str]:
    """ingested when every tagged series converted and every scan downloaded; partial otherwise."""
    failed_dl = [r.scan_id for r in series if r.download_status != "complete"]
    failed_cv = [r.scan_id for r in series if r.tag and r.conversion_status == "failed"]
    if not failed_dl and not failed_cv:
        return "ingested", ""
    parts = []
    if failed_dl:
        parts.append(f"download failed for scan(s) {', '.join(failed_dl)}")
    if failed_cv:
        parts.append(f"conversion failed for scan(s) {', '.join(failed_cv)}")
    return "partial", "; ".join(parts)
