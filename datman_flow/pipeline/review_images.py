"""The pictures reviewers rate, per measured series and review step: one slice in each
orientation, rendered beside the series' NIfTI (qc/review_pictures.py) and registered in
`rating_images` under the step of its QC type (RAW_T1W, RAW_BOLD, RAW_DWI); for a T1w whose
structural derivatives were written, also its normalisation to MNI152NLin2009aSym (the MNI-space
T1 with the template's edges, qc/normalisation_picture.py) under SPATIAL_NORMALIZATION.

`ensure_review_images` is called on every view of a session's page and at the end of the QC
step, so it is cheap when nothing is missing: three reads of the session's store files
(qc_series, series, rating_images) and a stat of each NIfTI and picture. Each store read opens
a DuckDB connection (about 50 ms on a busy 2-core machine), so a caller that keeps the tables in
memory (the review app's TableCaches) passes the session's rows instead: then only the stats. A series' pictures of
one step are drawn again when one of them is missing, older than the image they show (the series
was converted or normalised again) or not registered; its rows are added under the table's lock with the unique key
(slice, file1, display, step), so two callers at once register each picture once, and a new
row appears only when a picture changed its slice (the old row keeps the ratings given to it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from datman_flow.layout import DataLayout
from datman_flow.naming import parse_session_label
from datman_flow.qc.derivatives import MANIFEST, SPACE, stem_of
from datman_flow.qc.normalisation_picture import normalisation_paths, render_normalisation_pictures
from datman_flow.qc.review_pictures import ReviewPicture, picture_paths, render_review_pictures
from datman_flow.review.scales import STEP_OF_QC_TYPE, Step
from datman_flow.safe_paths import UnsafePath, inside
from datman_flow.store import QcSeriesRow, SeriesRow
from datman_flow.store.review_rows import RatingImageRow

log = logging.getLogger(__name__)

NIFTI_ENDINGS = (".nii", ".nii.gz")


@dataclass(frozen=True)
class ShownSeries:
    """A measured series whose pictures of one step can be drawn: the image they show checked to
    lie in the session's folder (its NIfTI) or derivatives folder (its MNI-space T1)."""

    series_number: str
    tag: str
    qc_type: str
    nifti: Path  # real path of the image shown
    file1: str  # that image relative to the data folder
    step: int
    original: Path | None = None  # SPATIAL_NORMALIZATION: the series' NIfTI, beside which the pictures lie

    def paths(self) -> dict[int, Path]:
        """display -> the picture's path."""
        if self.step == Step.SPATIAL_NORMALIZATION and self.original is not None:
            return normalisation_paths(self.original)
        return picture_paths(self.nifti)

    def render(self) -> list[ReviewPicture]:
        if self.step == Step.SPATIAL_NORMALIZATION and self.original is not None:
            return render_normalisation_pictures(self.nifti, self.original)
        return render_review_pictures(self.nifti, self.qc_type)


def normalised_series(layout: DataLayout, label: str, shown: ShownSeries) -> ShownSeries | None:
    """The SPATIAL_NORMALIZATION pictures of a shown T1w whose derivatives were written (its
    manifest and MNI-space T1 exist in the session's derivatives folder), else None."""
    if shown.qc_type != "anat":
        return None
    folder = layout.derivatives(parse_session_label(label))
    stem = stem_of(shown.nifti)
    mni = folder / f"{stem}_{SPACE}_desc-preproc_T1w.nii.gz"
    if not (folder / f"{stem}{MANIFEST}").is_file() or not mni.is_file():
        return None
    try:
        real = inside(mni, folder)
    except UnsafePath:
        return None
    return ShownSeries(shown.series_number, shown.tag, shown.qc_type, real, relative(real, layout.root),
                       int(Step.SPATIAL_NORMALIZATION), shown.nifti)


@dataclass(frozen=True)
class ReviewImages:
    """The session's registered pictures to rate, and why some series have none (series -> reason)."""

    rows: list[RatingImageRow]
    problems: dict[str, str] = field(default_factory=dict)
    rendered: int = 0  # pictures drawn by this call


def unique_key(row: RatingImageRow) -> tuple[object, ...]:
    """What makes a registered picture the same picture: the store's unique filter."""
    return row.slice, row.file1, row.display, row.step


def relative(path: Path, root: Path) -> str:
    return str(path.relative_to(os.path.realpath(root)))


def shown_series(layout: DataLayout, label: str, qc_series: Sequence[QcSeriesRow] | None = None,
                 series: Sequence[SeriesRow] | None = None) -> tuple[list[ShownSeries], dict[str, str]]:
    """The session's measured series with a NIfTI to draw from, and the reason for each that has
    none (qc_series and series: the session's rows when the caller holds them, else read)."""
    store = layout.metric_store
    if qc_series is None:
        qc_series = store.read(QcSeriesRow, label)
    measured = [q for q in qc_series if q.status == "measured" and q.session == label]
    if not measured:
        return [], {}
    folder = layout.nii(parse_session_label(label))
    if series is None:
        series = store.read(SeriesRow, label)
    converted = {(s.series_number, s.tag): s.nifti_path for s in series if s.nifti_path and s.session == label}
    shown, problems = [], {}
    for q in measured:
        where = converted.get((q.series_number, q.tag))
        step = STEP_OF_QC_TYPE.get(q.qc_type)
        if step is None:
            problems[q.series_number] = f"qc type {q.qc_type!r} has no review step"
            continue
        if not where or not where.endswith(NIFTI_ENDINGS):
            problems[q.series_number] = f"no NIfTI recorded (nifti_path {where!r})"
            continue
        try:
            nifti = inside(Path(where), folder)
        except UnsafePath as exc:
            problems[q.series_number] = str(exc)
            continue
        if not nifti.is_file():
            problems[q.series_number] = f"its NIfTI {where} is gone"
            continue
        shown.append(ShownSeries(q.series_number, q.tag, q.qc_type, nifti, relative(nifti, layout.root), int(step)))
        normalised = normalised_series(layout, label, shown[-1])
        if normalised is not None:
            shown.append(normalised)
    return shown, problems


def up_to_date(series: ShownSeries, registered: set[tuple[str, int, int]], root: Path) -> bool:
    """Every picture of the series exists, is newer than its NIfTI and is registered."""
    nifti_time = series.nifti.stat().st_mtime
    for display, png in series.paths().items():
        try:
            if png.stat().st_mtime < nifti_time:
                return False
        except FileNotFoundError:
            return False
        if (relative(png, root), display, series.step) not in registered:
            return False
    return True


def image_rows(label: str, series: ShownSeries, pictures: Iterable[ReviewPicture], root: Path) -> list[RatingImageRow]:
    created = datetime.now(UTC).replace(tzinfo=None)
    return [RatingImageRow(id=0, img=relative(p.path, root), slice=p.slice, file1=series.file1, file2=None,
                           display=p.display, step=series.step, created=created, scan_session=label,
                           series_number=series.series_number, tag=series.tag, width=p.width, height=p.height)
            for p in pictures]


def series_order(number: str) -> tuple[int, str]:
    return (int(number), number) if number.isdigit() else (1 << 62, number)


def current_rows(rows: Sequence[RatingImageRow], shown: Sequence[ShownSeries], root: Path) -> list[RatingImageRow]:
    """Per shown series and display, the latest row of its current picture (when the file exists),
    by series number then display."""
    expected = {(s.file1, s.step, d): relative(png, root) for s in shown for d, png in s.paths().items()}
    latest: dict[tuple[str, int, int], RatingImageRow] = {}
    for row in rows:
        key = (row.file1, row.step, row.display)
        if expected.get(key) == row.img and (key not in latest or row.id > latest[key].id):
            latest[key] = row
    kept = [row for row in latest.values() if (root / row.img).is_file()]
    return sorted(kept, key=lambda r: (series_order(r.series_number), r.display))


def review_images(layout: DataLayout, label: str, *, qc_series: Sequence[QcSeriesRow] | None = None,
                  series: Sequence[SeriesRow] | None = None,
                  images: Sequence[RatingImageRow] | None = None) -> ReviewImages:
    """Draw and register whatever pictures of the session are missing; the registered ones and
    the reason each series without pictures has none (never raised: one series' failure leaves
    the others). `qc_series`, `series`, `images`: the session's rows of those tables when the
    caller holds them (rows of other sessions are ignored); each one not given is read."""
    shown, problems = shown_series(layout, label, qc_series, series)
    store, root = layout.metric_store, layout.root
    rows = [r for r in images if r.scan_session == label] if images is not None else store.read(RatingImageRow, label)
    registered = {(r.img, r.display, r.step) for r in rows}
    new: list[RatingImageRow] = []
    rendered = 0
    failed: set[tuple[str, int]] = set()
    for series in shown:
        if up_to_date(series, registered, root):
            continue
        try:
            pictures = series.render()
        except Exception as exc:  # noqa: BLE001 - this series has no pictures, with the reason; the others go on
            what = "normalisation pictures" if series.step == Step.SPATIAL_NORMALIZATION else "pictures to rate"
            reason = f"{what} not drawn: {type(exc).__name__}: {exc}"
            problems[series.series_number] = "; ".join(filter(None, [problems.get(series.series_number), reason]))
            failed.add((series.series_number, series.step))
            continue
        rendered += len(pictures)
        new += image_rows(label, series, pictures, root)
    if new:  # read back: a caller at the same time may have registered some of them first
        store.append(RatingImageRow, label, new, unique=unique_key)
        rows = store.read(RatingImageRow, label)
    for number, reason in problems.items():
        log.warning("%s series %s: no pictures to rate: %s", label, number, reason)
    return ReviewImages(current_rows(rows, [s for s in shown if (s.series_number, s.step) not in failed], root),
                        problems, rendered)


def ensure_review_images(layout: DataLayout, label: str, *, qc_series: Sequence[QcSeriesRow] | None = None,
                         series: Sequence[SeriesRow] | None = None,
                         images: Sequence[RatingImageRow] | None = None) -> list[RatingImageRow]:
    """The session's registered pictures to rate (by series number, then display X, Y, Z),
    rendering and registering any missing ones; a series that cannot have pictures is skipped,
    with a warning logged. Pass the session's rows of qc_series, series and rating_images when
    already in memory (e.g. `TableCache(store.parquet_dir, QcSeriesRow).rows()`): no store read
    then, unless something had to be registered."""
    return review_images(layout, label, qc_series=qc_series, series=series, images=images).rows
