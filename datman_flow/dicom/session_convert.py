"""Converting every tagged series of a session, in parallel, each failure recorded."""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from datman_flow.dicom.convert import ConversionOutcome, Dcm2niix, convert_series, keep_header_copy
from datman_flow.dicom.index import list_series_files
from datman_flow.dicom.workdir import remove_leftover_work
from datman_flow.layout import DataLayout
from datman_flow.naming import ScanId, output_stem
from datman_flow.records import SeriesRecord

log = logging.getLogger(__name__)


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def series_stem(scan_id: ScanId, record: SeriesRecord) -> str:
    return output_stem(scan_id, record.tag or "", record.series_number, record.description)


def convert_one(tool: Dcm2niix, layout: DataLayout, scan_id: ScanId, record: SeriesRecord) -> SeriesRecord:
    stem = series_stem(scan_id, record)
    base = record.with_changes(dcm2niix_version=tool.version)
    if record.bad_files:
        shown = ", ".join(record.bad_files[:5]) + (" ..." if len(record.bad_files) > 5 else "")
        return base.with_changes(conversion_status="failed", conversion_message=(
            f"not converted: {len(record.bad_files)} of {record.n_files} files are not readable DICOM ({shown})"))
    try:
        files = list_series_files(Path(record.files_dir))
        outcome = convert_series(tool, Path(record.files_dir), layout.nii(scan_id), stem, expected_files=len(files))
        if outcome.status == "converted":
            kept = layout.dcm(scan_id) / f"{stem}.dcm"
            keep_header_copy(files[0], kept)
    except OSError as exc:  # disk full, permissions: this series fails, the others go on
        outcome = ConversionOutcome("failed", f"{type(exc).__name__}: {exc}")
    if outcome.status != "converted":
        log.warning("series %s of %s failed to convert: %s", record.scan_id, record.session, outcome.message)
        return base.with_changes(conversion_status="failed", conversion_message=outcome.message)
    return base.with_changes(conversion_status="converted", conversion_message=outcome.message,
                             nifti_path=outcome.nifti_path, outputs=outcome.outputs, dicom_kept=str(kept))


def convert_session(records: list[SeriesRecord], scan_id: ScanId, layout: DataLayout, tool: Dcm2niix,
                    workers: int | None = None) -> list[SeriesRecord]:
    """Convert the tagged series; others pass through unchanged. Order is kept. Work folders an
    earlier, stopped conversion of this session left in its NIfTI folder are removed first."""
    remove_leftover_work(layout.nii(scan_id), f"{scan_id.label}_")
    todo = [r for r in records if r.tag and r.download_status == "complete"]
    stems = Counter(series_stem(scan_id, r) for r in todo)
    results: dict[str, SeriesRecord] = {}
    runnable = []
    for record in todo:
        if stems[series_stem(scan_id, record)] > 1:
            results[record.scan_id] = record.with_changes(conversion_status="failed", conversion_message=(
                f"not converted: output name {series_stem(scan_id, record)} is shared by several series"))
        else:
            runnable.append(record)
    # Largest series first, so the long one does not start last.
    runnable.sort(key=lambda r: -r.n_files)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for record in pool.map(lambda r: convert_one(tool, layout, scan_id, r), runnable):
            results[record.scan_id] = record
    return [results.get(r.scan_id, r) for r in records]
