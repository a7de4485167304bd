"""The metric store's tables as typed rows: one frozen dataclass per table, its fields the
table's columns in order (the DuckDB type follows from the field's type, see schema.py).

A row is built with keywords, so a misspelt column is a TypeError where the row is made, and
read back as the same type, so a misspelt column is an AttributeError where it is read, never
a silent NULL. README's "Metric store" section mirrors these comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from datman_flow.store.review_rows import REVIEW_ROW_TYPES
from datman_flow.store.webapi_rows import WEBAPI_ROW_TYPES


@dataclass(frozen=True)
class SessionRow:
    """One XNAT session: where it comes from and how far its ingestion got."""

    TABLE: ClassVar[str] = "sessions"
    session: str  # the label, STUDY_SITE_SUBJECT_TIMEPOINT_REPEAT
    study: str = ""
    site: str = ""
    subject: str = ""
    timepoint: str | None = None
    repeat: str | None = None
    is_phantom: bool = False
    xnat_project: str = ""
    xnat_id: str = ""
    insert_date: str = ""  # XNAT's insert_date, as XNAT wrote it
    scan_date: str = ""  # the session's date on XNAT (DICOM StudyDate)
    ingested_at: datetime | None = None
    status: str = ""  # ingesting | ingested | partial | failed | rejected
    reason: str = ""
    health: str = ""  # ok | attention | failed, once the session's run has finished ('' before)
    health_reasons: str = ""  # why it is not ok, in a short line ('; ' between reasons)


@dataclass(frozen=True)
class SeriesRow:
    """One series (XNAT scan) of a session, from download through conversion."""

    TABLE: ClassVar[str] = "series"
    session: str
    scan_id: str
    series_number: str = ""
    description: str = ""
    tag: str | None = None
    untagged_reason: str | None = None
    n_files: int = 0
    n_frames: int = 0
    image_type: str = ""
    series_uid: str = ""
    sop_class_uid: str = ""
    modality: str = ""
    download_status: str = ""  # complete | failed
    download_message: str = ""
    verified: str = ""  # md5 | size+count only (XNAT listed no digests)
    bad_files: tuple[str, ...] = ()
    nifti_path: str | None = None
    outputs: tuple[str, ...] = ()
    dicom_kept: str | None = None
    conversion_status: str = ""  # pending | converted | failed | skipped
    conversion_message: str = ""
    dcm2niix_version: str = ""


@dataclass(frozen=True)
class CheckRow:
    """One outcome of a per-session check (expected_series: one per tag; header_drift: one per
    series; qc_outliers: one per series measured)."""

    TABLE: ClassVar[str] = "check_results"
    session: str
    check_name: str
    tag: str | None = None
    passed: bool | None = False  # None: could not be evaluated (no reference yet), neither passed nor failed
    expected: int | None = None
    found: int | None = None
    detail: str = ""
    series: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeaderParameterRow:
    """The scanner parameters of one converted series (the drift history)."""

    TABLE: ClassVar[str] = "header_parameters"
    session: str
    study: str
    site: str
    tag: str
    series_number: str
    parameters: str  # JSON object: parameter -> value


@dataclass(frozen=True)
class HeaderDiffRow:
    """One parameter of one series that differs from its reference."""

    TABLE: ClassVar[str] = "header_diffs"
    session: str
    series_number: str
    tag: str
    field: str
    expected: str  # JSON value
    actual: str  # JSON value
    tolerance: float | None
    kind: str  # software_upgrade | changed | missing | unexpected
    gold_source: str  # the gold-standard file, or 'provisional: N sessions'
    provisional: bool
    severity: str  # warn | error, as configured


@dataclass(frozen=True)
class QcMetricRow:
    """Long form: one row per series and metric (MRIQC's names)."""

    TABLE: ClassVar[str] = "qc_metrics"
    session: str
    series_number: str
    tag: str
    metric: str
    value: float
    software_version: str
    computed_at: datetime
    metric_convention: str | None = None  # MRIQC release its definition follows (NULL: measured before, mriqc22)
    anat_engine: str | None = None  # T1w: what drew its tissue classes, builtin | ants (NULL: before, builtin)


@dataclass(frozen=True)
class QcSeriesRow:
    """One series the QC step looked at: measured, or failed with the reason."""

    TABLE: ClassVar[str] = "qc_series"
    session: str
    series_number: str
    tag: str
    qc_type: str  # anat | fmri | dwi
    status: str  # measured | failed
    message: str = ""
    json_path: str = ""  # MRIQC-format record
    picture_path: str = ""
    seconds: float | None = None
    metric_convention: str | None = None  # mriqc24 | mriqc22 (qc/settings.py)
    anat_engine: str | None = None  # T1w: builtin | ants


@dataclass(frozen=True)
class QcFlagRow:
    """One key metric of one series that is out of line: against the site's own history
    (robust z from median and MAD of earlier sessions of the same study, site, tag and scanner
    software) or, when that history is short, outside MRIQC's published typical range (the
    flags the QC picture draws in red)."""

    TABLE: ClassVar[str] = "qc_flags"
    session: str
    series_number: str
    tag: str
    metric: str
    value: float
    basis: str  # site history | typical range
    low: float | None = None  # the accepted range (site history: median -/+ z_limit x robust SD)
    high: float | None = None
    median: float | None = None  # site history: the median of the earlier sessions
    z: float | None = None  # site history: (value - median) / (1.4826 x MAD)
    n_history: int = 0  # earlier sessions compared with
    software: str = ""  # the scanner software the history was matched on


@dataclass(frozen=True)
class MorphometryRow:
    """A T1w's volumes (ml) from the QC's tissue maps, one row per series whose structural
    derivatives were written (qc/derivatives.py): TIV = CSF + GM + WM (partial-volume sums), the
    brain mask's volume, and how its MNI152 normalisation went."""

    TABLE: ClassVar[str] = "morphometry"
    session: str
    series_number: str
    tag: str
    tiv_ml: float
    gm_ml: float
    wm_ml: float
    csf_ml: float
    brain_ml: float
    template: str
    normalisation: str  # affine | syn
    brain_dice: float  # brain overlap with the template's brain mask after normalisation
    software_version: str
    computed_at: datetime


ROW_TYPES: tuple[type, ...] = (SessionRow, SeriesRow, CheckRow, HeaderParameterRow, HeaderDiffRow,
                               QcMetricRow, QcSeriesRow, QcFlagRow, MorphometryRow, *REVIEW_ROW_TYPES,
                               *WEBAPI_ROW_TYPES)
