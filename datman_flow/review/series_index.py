"""Measured series by the md5sum of their NIfTI: how a rating from an MRIQC report (which knows
its image only by `provenance.md5sum`) finds the series it is about.

The md5sum is in each measured series' MRIQC-format JSON (`qc_series.json_path`). The index is
kept in memory by the review app and brought up to date on each lookup: `TableCache` re-reads
only the `qc_series` files that changed, and only the sessions whose rows changed have their
JSON files read again (a session measured again rewrites its rows, with new timings). Paths from
the store are checked to lie inside the data folder before anything is read.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from datman_flow.review.scales import STEP_OF_QC_TYPE
from datman_flow.safe_paths import UnsafePath, inside
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.rows import QcSeriesRow
from datman_flow.store.table_cache import TableCache

log = logging.getLogger(__name__)

MD5 = re.compile(r"^[0-9a-f]{32}$")
MAX_JSON_BYTES = 20 * 1024 * 1024  # an MRIQC record with a BOLD's FD series is well under a megabyte
QC_JSON_SUFFIX = "_qc.json"


@dataclass(frozen=True)
class MeasuredSeries:
    """One measured series, its paths relative to the data folder."""

    session: str
    series_number: str
    tag: str
    qc_type: str  # anat | fmri | dwi
    nifti: str
    picture: str  # '' when the QC picture failed
    md5sum: str


def nifti_of(json_path: Path) -> Path:
    """The NIfTI a `<stem>_qc.json` describes: `<stem>.nii.gz`, else `<stem>.nii`."""
    stem = json_path.name[: -len(QC_JSON_SUFFIX)] if json_path.name.endswith(QC_JSON_SUFFIX) else json_path.stem
    gz = json_path.with_name(stem + ".nii.gz")
    plain = json_path.with_name(stem + ".nii")
    return plain if not gz.exists() and plain.exists() else gz


def recorded_md5(path: Path) -> str | None:
    """`provenance.md5sum` of an MRIQC-format JSON, lower case, or None."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            log.warning("%s: larger than %d bytes, not read", path, MAX_JSON_BYTES)
            return None
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot be read as JSON (%s)", path, exc)
        return None
    provenance = record.get("provenance") if isinstance(record, dict) else None
    md5 = provenance.get("md5sum") if isinstance(provenance, dict) else None
    return md5.lower() if isinstance(md5, str) and MD5.match(md5.lower()) else None


def measured_series(root: Path, row: QcSeriesRow) -> MeasuredSeries | None:
    """The series of a `qc_series` row, or None (not measured, no record, outside the data folder)."""
    if row.status != "measured" or not row.json_path or row.qc_type not in STEP_OF_QC_TYPE:
        return None
    try:
        json_path = inside(Path(row.json_path), root)
        nifti = inside(nifti_of(json_path), root).relative_to(root)
        picture = str(inside(Path(row.picture_path), root).relative_to(root)) if row.picture_path else ""
    except UnsafePath as exc:
        log.warning("series %s of %s: %s", row.series_number, row.session, exc)
        return None
    md5 = recorded_md5(json_path)
    if md5 is None:
        return None
    return MeasuredSeries(row.session, row.series_number, row.tag, row.qc_type, str(nifti), picture, md5)


class SeriesByMd5:
    """`index.find(md5sum)`: the measured series whose NIfTI has that md5sum, or None. Safe to
    share between the threads of the app."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).resolve()
        self._cache = TableCache(MetricStore.under(self.root).parquet_dir, QcSeriesRow)
        self._lock = threading.Lock()
        self._version = -1
        self._sessions: dict[str, tuple[tuple[QcSeriesRow, ...], tuple[MeasuredSeries, ...]]] = {}
        self._by_md5: dict[str, MeasuredSeries] = {}

    def find(self, md5sum: str) -> MeasuredSeries | None:
        self.refresh()
        with self._lock:
            return self._by_md5.get(md5sum.lower())

    def refresh(self) -> None:
        rows = self._cache.rows()
        with self._lock:
            version = self._cache.version
            if version == self._version:
                return
            by_session: dict[str, list[QcSeriesRow]] = defaultdict(list)
            for row in rows:
                by_session[row.session].append(row)
            sessions = {}
            for session, found in by_session.items():
                key = tuple(sorted(found, key=lambda r: (r.series_number, r.tag, r.json_path)))
                known = self._sessions.get(session)
                if known is not None and known[0] == key:
                    sessions[session] = known
                    continue
                series = (measured_series(self.root, row) for row in key)
                sessions[session] = (key, tuple(s for s in series if s is not None))
            by_md5: dict[str, MeasuredSeries] = {}
            for session in sorted(sessions, reverse=True):  # the same image in two sessions: the first label wins
                by_md5.update({s.md5sum: s for s in reversed(sessions[session][1])})
            self._sessions, self._by_md5, self._version = sessions, by_md5, version
