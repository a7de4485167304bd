"""The conversion step: every tagged series through dcm2niix under the lab's naming, the
series and the session's status recorded."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from datman_flow.dicom.convert import find_dcm2niix
from datman_flow.dicom.session_convert import convert_session, series_stem
from datman_flow.layout import DataLayout
from datman_flow.pipeline import persist
from datman_flow.pipeline.locks import session_lock
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.records import PulledSession, SeriesRecord
from datman_flow.safe_paths import remove_tree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertedSession:
    series: list[SeriesRecord]
    status: str  # ingested | partial
    reason: str
    dcm2niix_version: str
    nii_dir: Path


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


def convert_step(target: SessionTarget, layout: DataLayout, pulled: PulledSession,
                 indexed: Sequence[SeriesRecord]) -> ConvertedSession:
    tool = find_dcm2niix()
    with session_lock(layout, target.label, "the conversion"):
        try:
            series = convert_session(indexed, target.scan_id, layout, tool)
        except BaseException as exc:  # an interrupt: the session must not stay `ingesting`
            persist.record_session(layout, persist.session_row(
                target, pulled, "failed", f"conversion interrupted or crashed ({type(exc).__name__}: {exc})"))
            raise
        prune_vanished_outputs(layout, target, series)
        persist.record_series(layout, target.label, series)
        status, reason = session_status(series)
        persist.record_session(layout, persist.session_row(target, pulled, status, reason))
    return ConvertedSession(series, status, reason, tool.version, layout.nii(target.scan_id))


def prune_vanished_outputs(layout: DataLayout, target: SessionTarget, series: Sequence[SeriesRecord]) -> list[str]:
    """Remove this session's NIfTI, sidecars, kept DICOM and QC files of series it no longer
    has (a scan deleted on XNAT, a tag renamed): files named after the session's label whose
    name belongs to none of its current tagged series. Only inside the session's own folders."""
    label = target.label
    stems = tuple(series_stem(target.scan_id, s) for s in series if s.tag)
    removed = []
    for folder in (layout.nii(target.scan_id), layout.dcm(target.scan_id)):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            name = path.name
            if not name.startswith(label + "_") or any(name.startswith(stem + c) for stem in stems for c in "._"):
                continue
            remove_tree(path, folder)
            removed.append(name)
            log.warning("%s removed: its series is no longer part of session %s", path, label)
    return removed
