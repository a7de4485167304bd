"""The QC step: every converted series whose tag asks for QC measured, with its picture and
MRIQC-format JSON, and for a T1w its structural derivatives (qc/derivatives.py); each failure
recorded with its reason, the others go on."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from datman_flow.config import TagInfo
from datman_flow.layout import DataLayout
from datman_flow.pipeline import persist
from datman_flow.pipeline.locks import session_lock
from datman_flow.pipeline.normalisation import CHECK_NAME as NORMALISATION
from datman_flow.pipeline.normalisation import DerivedSeries, check_rows, morphometry_rows
from datman_flow.pipeline.outliers import MeasuredSeries, SeriesOutliers, outlier_step
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.pipeline.review_images import review_images
from datman_flow.qc.measure import (
    Measured,
    analyse,
    companion,
    md5sum,
    mriqc_record,
    picture,
    software_version,
    write_json_atomic,
)
from datman_flow.qc.result import QCResult
from datman_flow.qc.settings import DEFAULT_QC, QcSettings
from datman_flow.records import SeriesRecord
from datman_flow.store import MorphometryRow, QcMetricRow, QcSeriesRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeriesQC:
    series: SeriesRecord
    kind: str
    status: str  # measured | failed
    message: str = ""
    result: QCResult | None = None
    json_path: str = ""
    picture_path: str = ""
    outliers: SeriesOutliers | None = None  # measured series: its QC flags and qc_outliers verdict
    derived: DerivedSeries | None = None  # a measured T1w given a derivatives folder: its derivatives or why not


def derive_series(record: SeriesRecord, nifti: Path, measured: Measured, folder: Path,
                  settings: QcSettings) -> DerivedSeries:
    """The structural derivatives of a measured T1w, from the QC's own arrays, or the reason."""
    from datman_flow.qc.derivatives import derive  # numpy/scipy/nibabel, imported when a T1w is measured

    number, tag = record.series_number, str(record.tag)
    try:
        done = derive(nifti, measured.reuse, folder, settings.normalisation, software_version(), md5sum(nifti))
    except Exception as exc:  # noqa: BLE001 - the metrics stand without their derivatives; the reason is kept
        log.warning("derivatives of %s not written: %s: %s", nifti.name, type(exc).__name__, exc)
        return DerivedSeries(number, tag, None, f"{type(exc).__name__}: {exc}")
    return DerivedSeries(number, tag, done)


def measure_series(record: SeriesRecord, kind: str, settings: QcSettings = DEFAULT_QC,
                   derivatives: Path | None = None) -> SeriesQC:
    """Measure one series; a T1w's structural derivatives go into ``derivatives`` when given."""
    nifti = Path(str(record.nifti_path))
    try:
        measured = analyse(kind, nifti, settings)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any failure is this series' problem: recorded, the session goes on
        log.warning("QC of %s failed: %s", nifti.name, exc)
        return SeriesQC(record, kind, "failed", f"{type(exc).__name__}: {exc}")
    result = measured.result
    json_path = write_json_atomic(companion(nifti, "_qc.json"), mriqc_record(result, nifti))
    try:
        png = str(picture(kind, nifti, measured, companion(nifti, "_qc.png")))  # type: ignore[arg-type]
        message = ""
    except Exception as exc:  # noqa: BLE001 - the metrics stand without their picture
        png, message = "", f"picture failed: {type(exc).__name__}: {exc}"
    derived = None
    if kind == "anat" and derivatives is not None:
        derived = derive_series(record, nifti, measured, derivatives, settings)
        if derived.derivatives is None:
            message = "; ".join(filter(None, [message, f"derivatives failed: {derived.error}"]))
    return SeriesQC(record, kind, "measured", message, result, str(json_path), png, derived=derived)


def measure_session(series: Sequence[SeriesRecord], registry: Mapping[str, TagInfo],
                    settings: QcSettings = DEFAULT_QC, derivatives: Path | None = None) -> list[SeriesQC]:
    out = []
    for record in series:
        info = registry.get(record.tag or "")
        if info is None or info.qc == "ignore" or record.conversion_status != "converted" or not record.nifti_path:
            continue
        out.append(measure_series(record, info.qc, settings, derivatives))
    return out


def metric_rows(session: str, measured: Sequence[SeriesQC]) -> list[QcMetricRow]:
    when, version = datetime.now().replace(microsecond=0), software_version()
    return [QcMetricRow(session=session, series_number=q.series.series_number, tag=str(q.series.tag), metric=name,
                        value=float(value), software_version=version, computed_at=when,
                        metric_convention=q.result.convention or None, anat_engine=q.result.engine or None)
            for q in measured if q.result for name, value in sorted(q.result.metrics.items())]


def series_rows(session: str, measured: Sequence[SeriesQC]) -> list[QcSeriesRow]:
    return [QcSeriesRow(session=session, series_number=q.series.series_number, tag=str(q.series.tag), qc_type=q.kind,
                        status=q.status, message=q.message, json_path=q.json_path, picture_path=q.picture_path,
                        seconds=q.result.seconds if q.result else None,
                        metric_convention=q.result.convention or None if q.result else None,
                        anat_engine=q.result.engine or None if q.result else None) for q in measured]


def with_outliers(target: SessionTarget, layout: DataLayout, measured: Sequence[SeriesQC]) -> list[SeriesQC]:
    """Each measured series compared with the site's history (pipeline/outliers.py), its flags
    and check row recorded; the SeriesQC carry the verdicts."""
    done = [q for q in measured if q.result is not None]
    found = outlier_step(target, layout, [MeasuredSeries(q.series.series_number, str(q.series.tag), q.kind,  # type: ignore[arg-type]
                                                         q.result.metrics) for q in done if q.result])
    verdicts = {id(q): o for q, o in zip(done, found)}
    return [replace(q, outliers=verdicts.get(id(q))) for q in measured]


def with_review_images(layout: DataLayout, label: str, measured: Sequence[SeriesQC]) -> list[SeriesQC]:
    """The pictures reviewers rate drawn and registered for the measured series (pipeline/
    review_images.py), so that they exist before anyone opens the session's page. A series whose
    pictures could not be drawn keeps its metrics: the reason is added to its message (a warning
    in the run's log and the problems table), and qc_series is written again with it."""
    try:
        problems = review_images(layout, label).problems
    except Exception as exc:  # noqa: BLE001 - the QC stands without the pictures to rate; the reason is kept
        log.warning("pictures to rate of %s not drawn: %s: %s", label, type(exc).__name__, exc)
        problems = {q.series.series_number: f"{type(exc).__name__}: {exc}" for q in measured if q.status == "measured"}
    if not problems:
        return list(measured)
    out = [replace(q, message="; ".join(filter(None, [q.message, f"no pictures to rate: {problems[number]}"])))
           if q.status == "measured" and (number := q.series.series_number) in problems else q for q in measured]
    persist.record_rows(layout, QcSeriesRow, label, series_rows(label, out))
    return out


def qc_step(target: SessionTarget, layout: DataLayout, series: Sequence[SeriesRecord],
            registry: Mapping[str, TagInfo]) -> list[SeriesQC]:
    """Measure the session's series (a T1w's derivatives into the session's derivatives folder) and
    record their metrics and outcomes, the T1w's volumes and normalisation checks, then their QC
    flags, then draw the pictures reviewers rate."""
    with session_lock(layout, target.label, "the QC step"):
        measured = measure_session(series, registry, target.study.qc, layout.derivatives(target.scan_id))
        persist.record_rows(layout, QcMetricRow, target.label, metric_rows(target.label, measured))
        persist.record_rows(layout, QcSeriesRow, target.label, series_rows(target.label, measured))
        derived = [q.derived for q in measured if q.derived is not None]
        persist.record_rows(layout, MorphometryRow, target.label,
                            morphometry_rows(target.label, derived, software_version()))
        persist.record_checks(layout, target.label, NORMALISATION, check_rows(target.label, derived))
        measured = with_outliers(target, layout, measured)
        measured = with_review_images(layout, target.label, measured)
    return measured
