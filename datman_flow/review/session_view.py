"""What the session page shows, gathered from the store in one place (store/review_queries.py's
SessionReader): the session's row, series, checks, header findings and
QC outcomes (the facts pipeline/health.py judges), its
QC metrics with the site's medians (store/review_queries.py, cached), its flags, the pictures
to rate with their latest rating and history, and the review's state, sign-offs and decisions.
Plain dataclasses: the template only formats them."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from datman_flow.checks.expected_series import CHECK_NAME as EXPECTED_SERIES
from datman_flow.pipeline.drift import CHECK_NAME as HEADER_DRIFT
from datman_flow.pipeline.health import CHECKS
from datman_flow.pipeline.outliers import CHECK_NAME as QC_OUTLIERS
from datman_flow.pipeline.review_state import ReviewState, review_state
from datman_flow.qc.kinds import QC_KINDS
from datman_flow.review.images import image_file, image_size, image_url
from datman_flow.review.pictures import picture_file
from datman_flow.review.scales import DISPLAY_NAMES, Display, Rating, Step
from datman_flow.store import (
    CheckRow,
    HeaderDiffRow,
    QcFlagRow,
    QcMetricRow,
    QcSeriesRow,
    SeriesRow,
    SessionRow,
)
from datman_flow.store.review_queries import SessionReader, SiteMetricValues, Wanted, measure_basis
from datman_flow.store.review_rows import (
    RatingCoordinateRow,
    RatingImageRow,
    RatingRow,
    SeriesDecisionRow,
    SignOffRow,
)

PAGE_TABLES: tuple[Wanted, ...] = (
    (SessionRow, None), (SeriesRow, None), *((CheckRow, name) for name in CHECKS), (HeaderDiffRow, None),
    (QcSeriesRow, None), (QcMetricRow, None), (QcFlagRow, None), (RatingRow, None), (RatingCoordinateRow, None),
    (SignOffRow, None), (SeriesDecisionRow, None), (RatingImageRow, None))


@dataclass(frozen=True)
class MetricView:
    metric: str
    value: float
    median: float | None  # the site's, over its other sessions of the study and tag
    sessions: int  # how many other sessions the median is over
    flagged: bool


@dataclass(frozen=True)
class RatingView:
    row: RatingRow
    points: tuple[tuple[float, float], ...]

    @property
    def name(self) -> str:
        return Rating(self.row.rating).name if self.row.rating in iter(Rating) else str(self.row.rating)

    @property
    def points_json(self) -> str:
        return json.dumps([{"x": x, "y": y} for x, y in self.points])


@dataclass(frozen=True)
class ImageView:
    row: RatingImageRow
    url: str | None  # None: the file is missing or not one the picture route serves
    width: int | None
    height: int | None
    latest: RatingView | None
    history: tuple[RatingView, ...]  # newest first, the latest included

    @property
    def caption(self) -> str:
        display = DISPLAY_NAMES.get(Display(self.row.display), "?") if self.row.display in iter(Display) else "?"
        step = Step(self.row.step).name.lower().replace("_", " ") if self.row.step in iter(Step) else self.row.step
        slice_text = f", slice {self.row.slice}" if self.row.slice is not None else ""
        return f"{display}{slice_text} ({step})"


@dataclass(frozen=True)
class SeriesView:
    row: SeriesRow
    qc: QcSeriesRow | None
    picture_url: str | None
    metrics: tuple[MetricView, ...]
    flags: tuple[QcFlagRow, ...]
    decision: SeriesDecisionRow | None  # the latest
    decisions: tuple[SeriesDecisionRow, ...]  # newest first
    images: tuple[ImageView, ...]


@dataclass(frozen=True)
class SessionView:
    label: str
    session: SessionRow
    review: ReviewState
    signoffs: tuple[SignOffRow, ...]  # newest first
    expected: tuple[CheckRow, ...]
    header_checks: tuple[CheckRow, ...]  # header_drift rows that did not pass
    diffs: tuple[HeaderDiffRow, ...]
    outliers: tuple[CheckRow, ...]  # qc_outliers rows that did not pass
    flags: tuple[QcFlagRow, ...]
    series: tuple[SeriesView, ...]
    loose_images: tuple[ImageView, ...]  # pictures of no recorded series

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(r for r in self.session.health_reasons.split("; ") if r)

    @property
    def pictures(self) -> int:
        return sum(len(s.images) for s in self.series) + len(self.loose_images)


def rating_views(ratings: Sequence[RatingRow], clicks: Sequence[RatingCoordinateRow]) -> dict[int, list[RatingView]]:
    """Each picture's ratings, newest first, with their clicks (a rating's clicks are the rows of
    its picture, sitting and time: they are saved with the rating's `created`)."""
    points: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for c in sorted(clicks, key=lambda c: c.id):
        if c.x is not None and c.y is not None:
            points[(c.img_id, c.session, c.created)].append((float(c.x), float(c.y)))
    out: dict[int, list[RatingView]] = defaultdict(list)
    for r in sorted(ratings, key=lambda r: r.id, reverse=True):
        out[r.img_id].append(RatingView(r, tuple(points.get((r.img_id, r.session, r.created), ()))))
    return out


def image_views(data_dir: Path, label: str, images: Sequence[RatingImageRow],
                ratings: dict[int, list[RatingView]]) -> list[ImageView]:
    out = []
    for image in sorted(images, key=lambda i: (i.series_number, i.step, i.display, i.id)):
        path = image_file(data_dir, label, image)
        size = image_size(image, path)
        history = tuple(ratings.get(image.id, ()))
        out.append(ImageView(image, image_url(label, path) if path else None, size[0] if size else None,
                             size[1] if size else None, history[0] if history else None, history))
    return out


def metric_views(medians: SiteMetricValues, session: SessionRow, qc: QcSeriesRow | None,
                 metrics: Sequence[QcMetricRow], flags: Sequence[QcFlagRow]) -> tuple[MetricView, ...]:
    """The series' key metrics (its QC kind's, in their order; others after) with the site's medians."""
    values = {m.metric: m.value for m in metrics}
    kind = QC_KINDS.get(qc.qc_type) if qc is not None else None
    keys = [m for m in (kind.key_metrics if kind else ()) if m in values] or sorted(values)
    if not keys:
        return ()
    tag = metrics[0].tag
    basis = measure_basis(qc.qc_type, qc.metric_convention, qc.anat_engine) if qc is not None else ""
    found = medians.medians(session.study, session.site, bool(session.is_phantom), tag, keys, session.session, basis)
    flagged = {f.metric for f in flags}
    return tuple(MetricView(m, values[m], found[m].median, found[m].sessions, m in flagged) for m in keys)


def read_session(reader: SessionReader, label: str) -> dict[Wanted, list] | None:
    """Every row of the session the page shows (its pictures to rate as registered so far), or
    None when the store has no session `label`."""
    if not reader.store.exists:
        return None
    found = reader.rows(label, PAGE_TABLES)
    return found if found[(SessionRow, None)] else None


def session_view(data_dir: Path, medians: SiteMetricValues, label: str, found: dict[Wanted, list],
                 images: Sequence[RatingImageRow]) -> SessionView:
    """The page's facts from `read_session`'s rows and the pictures to rate."""
    session: SessionRow = found[(SessionRow, None)][0]
    checks: list[CheckRow] = [row for name in CHECKS for row in found[(CheckRow, name)]]
    ratings, signoffs = found[(RatingRow, None)], found[(SignOffRow, None)]
    decisions: list[SeriesDecisionRow] = found[(SeriesDecisionRow, None)]
    metrics, flags = found[(QcMetricRow, None)], found[(QcFlagRow, None)]
    state = review_state(label, images, ratings, signoffs, decisions)
    all_images = image_views(data_dir, label, images, rating_views(ratings, found[(RatingCoordinateRow, None)]))
    qc_of = {(q.series_number, q.tag): q for q in found[(QcSeriesRow, None)]}
    decisions_of: dict[str, list[SeriesDecisionRow]] = defaultdict(list)
    for d in sorted(decisions, key=lambda d: d.id, reverse=True):
        decisions_of[d.series_number].append(d)
    series, used = [], set()
    for s in sorted(found[(SeriesRow, None)], key=lambda s: (len(s.series_number), s.series_number, s.scan_id)):
        qc = qc_of.get((s.series_number, s.tag or ""))
        picture = picture_file(data_dir, label, Path(qc.picture_path).name) if qc and qc.picture_path else None
        mine = [m for m in metrics if m.series_number == s.series_number and m.tag == s.tag]
        my_flags = tuple(f for f in flags if f.series_number == s.series_number and f.tag == s.tag)
        my_images = tuple(i for i in all_images if i.row.series_number == s.series_number)
        used.update(i.row.id for i in my_images)
        series.append(SeriesView(s, qc, image_url(label, picture) if picture else None,
                                 metric_views(medians, session, qc, mine, my_flags), my_flags,
                                 state.decisions.get(s.series_number), tuple(decisions_of.get(s.series_number, ())),
                                 my_images))
    return SessionView(
        label, session, state, tuple(sorted(signoffs, key=lambda s: s.id, reverse=True)),
        tuple(c for c in checks if c.check_name == EXPECTED_SERIES),
        tuple(c for c in checks if c.check_name == HEADER_DRIFT and c.passed is not True),
        tuple(found[(HeaderDiffRow, None)]),
        tuple(c for c in checks if c.check_name == QC_OUTLIERS and c.passed is False),
        tuple(flags), tuple(series), tuple(i for i in all_images if i.row.id not in used))
