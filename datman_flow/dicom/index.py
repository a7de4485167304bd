"""The series index: one record per pulled scan, with its tag or the reason it has none."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from datman_flow.config import TagRule
from datman_flow.dicom.headers import SeriesHeader, count_frames, is_readable_dicom, read_series_header
from datman_flow.dicom.tagging import tag_series
from datman_flow.records import PulledScan, PulledSession, SeriesRecord

log = logging.getLogger(__name__)
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def scan_sort_key(scan_id: str) -> tuple[int, str]:
    head = scan_id.split("-", 1)[0]
    return (int(head), scan_id) if head.isdigit() else (10**9, scan_id)


def list_series_files(directory: Path) -> list[Path]:
    """The files of one pulled scan (hidden bookkeeping files such as the manifest excluded)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(root, name) for name in files if not name.startswith("."))
    return sorted(found)


def first_readable_header(candidates: list[Path], keywords: set[str]
                          ) -> tuple[SeriesHeader | None, list[Path], str]:
    """The header of the first file that reads completely (in the index's order), the files
    tried before it that did not, and why the last of those failed."""
    unreadable: list[Path] = []
    problem = ""
    for path in candidates:
        try:
            return read_series_header(path, keywords), unreadable, problem
        except Exception as exc:  # noqa: BLE001 - any parse failure is this file's problem, recorded
            unreadable.append(path)
            problem = f"{path.name}: {exc}"
    return None, unreadable, problem


def names_in_order(files: list[Path], bad: set[Path]) -> tuple[str, ...]:
    return tuple(path.name for path in files if path in bad)


def index_scan(session: str, scan: PulledScan, rules: Mapping[str, TagRule]) -> SeriesRecord:
    base = SeriesRecord(
        session=session,
        scan_id=scan.scan_id,
        series_number=scan.scan_id,
        description=scan.description,
        download_status=scan.status,
        download_message=scan.message,
        verified=scan.verified,
        files_dir=scan.directory,
    )
    if scan.status != "complete":
        return base.with_changes(untagged_reason=f"download failed: {scan.message}", conversion_status="skipped",
                                 conversion_message="not converted: the download is incomplete")
    files = list_series_files(Path(scan.directory))
    candidates = [path for path in files if is_readable_dicom(path)]
    if not candidates:
        return base.with_changes(n_files=len(files), bad_files=tuple(p.name for p in files),
                                 untagged_reason="no readable DICOM file",
                                 conversion_status="skipped", conversion_message="not converted: no readable DICOM")
    keywords = {keyword for rule in rules.values() for keyword in rule.match}
    header, unreadable, problem = first_readable_header(candidates, keywords)
    if header is None:
        bad = names_in_order(files, set(files) - set(candidates) | set(unreadable))
        return base.with_changes(n_files=len(files), bad_files=bad,
                                 untagged_reason=f"no readable DICOM header in {len(unreadable)} files ({problem})",
                                 conversion_status="skipped", conversion_message="not converted: unreadable header")
    skipped = set(unreadable)
    good = [path for path in candidates if path not in skipped]
    multi_frame = header.number_of_frames > 1 or header.get("SOPClassUID") == ENHANCED_MR
    n_frames = len(good)
    if multi_frame:
        n_frames, cut = count_frames(good)
        unreadable = [*unreadable, *cut]
    bad = names_in_order(files, set(files) - set(candidates) | set(unreadable))
    decision = tag_series(header, rules)
    return base.with_changes(
        series_number=header.get("SeriesNumber") or scan.scan_id,
        description=header.get("SeriesDescription") or scan.description,
        series_uid=header.get("SeriesInstanceUID"),
        study_uid=header.get("StudyInstanceUID"),
        sop_class_uid=header.get("SOPClassUID"),
        modality=header.get("Modality"),
        image_type=header.image_type,
        n_files=len(files),
        n_frames=n_frames,
        bad_files=bad,
        tag=decision.tag,
        untagged_reason=decision.reason,
        conversion_status="pending" if decision.tag else "skipped",
        conversion_message="" if decision.tag else "not converted: untagged",
    )


def index_session(pulled: PulledSession, rules: Mapping[str, TagRule]) -> list[SeriesRecord]:
    scans = sorted(pulled.scans, key=lambda scan: scan_sort_key(scan.scan_id))
    records = [index_scan(pulled.session, scan, rules) for scan in scans]
    log.info("indexed %d series of %s (%d tagged)", len(records), pulled.session, sum(1 for r in records if r.tag))
    return records
