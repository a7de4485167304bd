"""Plain records that flow between the stages and into the metric store."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class SeriesRecord:
    """One series (one XNAT scan) of a session, from download through conversion."""

    session: str
    scan_id: str
    series_number: str
    description: str
    download_status: str  # complete | failed
    download_message: str = ""
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

    def with_changes(self, **changes: object) -> "SeriesRecord":
        return replace(self, **changes)

    def as_row(self) -> dict[str, object]:
        row = asdict(self)
        row["bad_files"] = list(self.bad_files)
        row["outputs"] = list(self.outputs)
        return row


@dataclass(frozen=True)
class SessionRecord:
    session: str
    study: str
    site: str
    subject: str
    timepoint: str | None
    repeat: str | None
    is_phantom: bool
    xnat_project: str
    xnat_id: str
    insert_date: str
    ingested_at: str
    status: str  # ingesting | ingested | partial | failed | rejected
    reason: str = ""
    scan_date: str = ""  # the session's date on XNAT (DICOM StudyDate)

    def as_row(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class CheckRecord:
    session: str
    check_name: str
    tag: str | None
    passed: bool
    expected: int | None
    found: int | None
    detail: str = ""
    series: tuple[str, ...] = field(default=())

    def as_row(self) -> dict[str, object]:
        row = asdict(self)
        row["series"] = list(self.series)
        return row


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
