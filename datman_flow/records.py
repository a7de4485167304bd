"""Plain records that flow between the stages of a session (pull -> index -> convert); the
store's rows are in store/rows.py."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SeriesRecord:
    """One series (one XNAT scan) of a session, from download through conversion."""

    session: str
    scan_id: str
    series_number: str
    description: str
    download_status: str  # complete | failed
    download_message: str = ""
    verified: str = ""  # how the download was verified: md5 | size+count only
    series_uid: str = ""
    study_uid: str = ""
    sop_class_uid: str = ""
    modality: str = ""
    image_type: str = ""
    n_files: int = 0
    n_frames: int = 0
    bad_files: tuple[str, ...] = ()
    tag: str | None = None
    untagged_reason: str | None = None
    files_dir: str = ""
    nifti_path: str | None = None
    outputs: tuple[str, ...] = ()
    dicom_kept: str | None = None
    conversion_status: str = "pending"  # pending | converted | failed | skipped
    conversion_message: str = ""
    dcm2niix_version: str = ""

    def with_changes(self, **changes: object) -> SeriesRecord:
        return replace(self, **changes)


@dataclass(frozen=True)
class PulledScan:
    """One XNAT scan after the pull: complete in `directory`, or failed with the reason."""

    scan_id: str
    description: str
    status: str  # complete | failed
    message: str
    directory: str
    n_files: int = 0
    n_bytes: int = 0
    seconds: float = 0.0
    verified: str = ""  # md5 | size+count only (XNAT listed no digests) | '' (not downloaded)


@dataclass(frozen=True)
class PulledSession:
    session: str
    xnat_project: str
    xnat_id: str
    insert_date: str
    raw_dir: str
    scans: tuple[PulledScan, ...]
    scan_date: str = ""  # the session's date on XNAT

    @property
    def failed(self) -> list[PulledScan]:
        return [scan for scan in self.scans if scan.status != "complete"]
