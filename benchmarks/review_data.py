"""A synthetic data folder for the review app: `make_store(data_dir, sessions=2000)` fills the
metric store as the pipeline and the reviewers would have, for the page benchmark
(benchmarks/review_pages.py) and for tests (a few dozen sessions).

Per session (study SPN01, sites CMH and ZHH alternating, one scan day each): one `sessions` row;
four `series` (T1, RST, DTI60 measured; FMAP not); three `qc_series` and 40 `qc_metrics` per
measured series; `check_results` of expected_series, header_drift and qc_outliers (one file
each, as the pipeline writes them); `qc_flags` for about one session in five and
`header_diffs` for one in ten (those sessions' health is "attention"); nine `rating_images`
(three per measured series). A quarter of the sessions were reviewed: a rating session per
step, a rating and a coordinate row (a few with a click) per picture, a sign-off, and a
blacklisted series now and then.

The first `pictured` reviewed sessions also have real files: small phantom NIfTIs where their
`series` rows say, with their pictures to rate drawn and registered by the pipeline's own
`ensure_review_images` (so their pages show real pictures); the other sessions' NIfTI and
picture paths name files that do not exist. Rows are written with store/bulk.py's
`replace_sessions` (the same files as MetricStore.replace per session, ~40 times faster) and
review rows of the pictured sessions with MetricStore.append, as the app adds them.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import nibabel as nib
import numpy as np

from datman_flow.layout import DataLayout
from datman_flow.naming import parse_session_label
from datman_flow.pipeline.review_images import ensure_review_images
from datman_flow.qc.kinds import QC_KINDS
from datman_flow.review.scales import STEP_OF_QC_TYPE, Rating
from datman_flow.samples import phantom
from datman_flow.samples.sessions import BOLD_GRID, DWI_GRID, SMALL_T1_GRID, dwi_scheme
from datman_flow.store import CheckRow, HeaderDiffRow, QcFlagRow, QcMetricRow, QcSeriesRow, SeriesRow, SessionRow
from datman_flow.store.bulk import replace_sessions
from datman_flow.store.review_rows import (
    RatingCoordinateRow,
    RatingImageRow,
    RatingRow,
    RatingSessionRow,
    SeriesDecisionRow,
    SignOffRow,
)

STUDY, SITES = "SPN01", ("CMH", "ZHH")
SERIES = (("2", "T1", "anat", "t1-mprage"), ("3", "RST", "fmri", "rest-bold"), ("4", "DTI60", "dwi", "dti-60dir"),
          ("5", "FMAP", None, "fieldmap"))  # number, tag, qc type (None: not measured), description
METRICS_PER_SERIES = 40
REVIEWERS = ("ann", "bob", "cyd")
PICTURE_SIZE = {0: (512, 448), 1: (448, 512), 2: (448, 512)}  # display -> (width, height) of a synthetic picture
FIRST_DAY = datetime(2023, 1, 2, 9, 0)


@dataclass(frozen=True)
class ReviewData:
    data_dir: Path
    labels: list[str]  # every session, in scan order
    rated: list[str]  # the sessions with ratings and a sign-off
    pictured: list[str]  # the sessions with real NIfTIs and pictures to rate
    seconds: float  # the time make_store took


def labels_of(sessions: int) -> list[str]:
    return [f"{STUDY}_{SITES[i % len(SITES)]}_{i // len(SITES) + 1:04d}_01_01" for i in range(sessions)]


def nifti_path(data_dir: Path, label: str, number: str, tag: str, description: str) -> Path:
    name = f"{label}_{tag}_{number.zfill(2)}_{description}.nii.gz"
    return DataLayout(data_dir).nii(parse_session_label(label)) / name


class Tables:
    """Every table's rows, gathered for one bulk write; ids counted per review table."""

    def __init__(self) -> None:
        self.rows: dict[tuple[type, str | None], list[object]] = defaultdict(list)
        self.next_id: dict[type, int] = defaultdict(lambda: 1)

    def add(self, row: object, part: str | None = None) -> None:
        self.rows[(type(row), part)].append(row)

    def new_id(self, row_type: type) -> int:
        self.next_id[row_type] += 1
        return self.next_id[row_type] - 1

    def write(self, data_dir: Path) -> int:
        store = DataLayout(data_dir).metric_store
        return sum(replace_sessions(store.parquet_dir, row_type, rows, part=part)
                   for (row_type, part), rows in self.rows.items())


def metric_values(kind: str, rng: random.Random) -> dict[str, float]:
    names = [*QC_KINDS[kind].key_metrics, *(f"extra_{i:02d}" for i in range(METRICS_PER_SERIES))][:METRICS_PER_SERIES]
    return {name: round(rng.uniform(0.5, 50.0), 4) for name in names}


def pipeline_rows(tables: Tables, data_dir: Path, label: str, day: datetime, rng: random.Random) -> None:
    """What ingest, checks and QC leave for one session."""
    scan_id = parse_session_label(label)
    flagged, drifted = rng.random() < 0.2, rng.random() < 0.1
    reasons = "; ".join(r for r, on in (("QC outlier", flagged), ("header drift", drifted)) if on)
    tables.add(SessionRow(session=label, study=STUDY, site=scan_id.site, subject=scan_id.subject,
                          timepoint=scan_id.timepoint, repeat=scan_id.repeat, xnat_project="SPINS",
                          xnat_id=f"XNAT_E{rng.randrange(10**5):05d}", insert_date=f"{day:%Y-%m-%d %H:%M:%S}",
                          scan_date=f"{day:%Y%m%d}", ingested_at=day + timedelta(hours=1), status="ingested",
                          health="attention" if reasons else "ok", health_reasons=reasons))
    for number, tag, kind, description in SERIES:
        where = nifti_path(data_dir, label, number, tag, description)
        tables.add(SeriesRow(session=label, scan_id=number, series_number=number, description=description, tag=tag,
                             n_files=176, n_frames=176, modality="MR", download_status="complete", verified="md5",
                             nifti_path=str(where), outputs=(str(where),), conversion_status="converted",
                             dcm2niix_version="v1.0.20240202"))
        tables.add(CheckRow(session=label, check_name="expected_series", tag=tag, passed=True, expected=1, found=1,
                            series=(number,)), part="expected_series")
        tables.add(CheckRow(session=label, check_name="header_drift", tag=tag, passed=not (drifted and tag == "T1"),
                            detail="EchoTime 0.00298 -> 0.00301" if drifted and tag == "T1" else "",
                            series=(number,)), part="header_drift")
        if kind is None:
            continue
        tables.add(QcSeriesRow(session=label, series_number=number, tag=tag, qc_type=kind, status="measured",
                               json_path=str(where).replace(".nii.gz", "_qc.json"),
                               picture_path=str(where).replace(".nii.gz", "_qc.png"),
                               seconds=round(rng.uniform(1, 9), 2)))
        values = metric_values(kind, rng)
        for metric, value in values.items():
            tables.add(QcMetricRow(session=label, series_number=number, tag=tag, metric=metric, value=value,
                                   software_version="datman-flow 0.1.0", computed_at=day + timedelta(hours=1)))
        flag = flagged and tag == "RST"
        if flag:
            tables.add(QcFlagRow(session=label, series_number=number, tag=tag, metric="tsnr", value=values["tsnr"],
                                 basis="site history", low=30.0, high=90.0, median=60.0, z=-3.8, n_history=40,
                                 software="syngo MR E11"))
        tables.add(CheckRow(session=label, check_name="qc_outliers", tag=tag, passed=not flag,
                            detail="tsnr low against the site's history" if flag else "", series=(number,)),
                   part="qc_outliers")
    if drifted:
        tables.add(HeaderDiffRow(session=label, series_number="2", tag="T1", field="EchoTime", expected="0.00298",
                                 actual="0.00301", tolerance=1e-06, kind="changed", gold_source="gold/CMH_T1.json",
                                 provisional=False, severity="warn"))


def image_rows(tables: Tables, data_dir: Path, label: str, day: datetime) -> list[RatingImageRow]:
    """The nine pictures the QC step registers (their files are not made)."""
    out = []
    for number, tag, kind, description in SERIES:
        if kind is None:
            continue
        where = nifti_path(data_dir, label, number, tag, description)
        for display, letter in enumerate("xyz"):
            width, height = PICTURE_SIZE[display]
            row = RatingImageRow(id=tables.new_id(RatingImageRow), img=str(where.relative_to(data_dir)).replace(
                ".nii.gz", f"_review-{letter}.png"), slice=60 + display, file1=str(where.relative_to(data_dir)),
                file2=None, display=display, step=int(STEP_OF_QC_TYPE[kind]), created=day + timedelta(hours=1),
                scan_session=label, series_number=number, tag=tag, width=width, height=height)
            tables.add(row)
            out.append(row)
    return out


def review_rows(tables: Tables, label: str, images: list[RatingImageRow], day: datetime,
                rng: random.Random) -> list[object]:
    """One reviewer's sitting over the session: a rating session per step, a rating and a
    coordinate row per picture, a sign-off, now and then a blacklisted series."""
    user, when = rng.choice(REVIEWERS), day + timedelta(days=rng.randint(1, 20))
    rows: list[object] = []
    sittings = {}
    for step in sorted({image.step for image in images}):
        sittings[step] = RatingSessionRow(id=tables.new_id(RatingSessionRow), step=step, user=user, created=when,
                                          scan_session=label)
        rows.append(sittings[step])
    for image in images:
        rating = Rating.PASS if rng.random() < 0.85 else rng.choice((Rating.UNSURE, Rating.FAIL))
        sitting = sittings[image.step].id
        rows.append(RatingRow(id=tables.new_id(RatingRow), source_data_issue=False, rating=int(rating), img_id=image.id,
                              session=sitting, notes="" if rating == Rating.PASS else "motion", created=when,
                              scan_session=label, user=user))
        click = rating != Rating.PASS and image.width is not None and image.height is not None
        rows.append(RatingCoordinateRow(id=tables.new_id(RatingCoordinateRow), source_data_issue=False,
                                        x=rng.uniform(0, image.width) if click else None,  # type: ignore[arg-type]
                                        y=rng.uniform(0, image.height) if click else None,  # type: ignore[arg-type]
                                        img_id=image.id, session=sitting, notes="", created=when, scan_session=label,
                                        user=user))
    rows.append(SignOffRow(id=tables.new_id(SignOffRow), scan_session=label, user=user, comment="looked at",
                           created=when + timedelta(minutes=5)))
    if rng.random() < 0.05:
        rows.append(SeriesDecisionRow(id=tables.new_id(SeriesDecisionRow), scan_session=label, series_number="3",
                                      tag="RST", decision="blacklisted", reason="severe motion", user=user,
                                      created=when + timedelta(minutes=4)))
    return rows


def write_phantoms(data_dir: Path, label: str, seed: int) -> None:
    """Small phantom NIfTIs (and the DWI's .bval) where the session's series rows say."""
    bvals, bvecs = dwi_scheme()
    volumes = {"T1": (SMALL_T1_GRID, lambda: phantom.t1w_volume(SMALL_T1_GRID, seed)),
               "RST": (BOLD_GRID, lambda: phantom.bold_series(BOLD_GRID, seed, n_volumes=12, motion_mm=0.1)),
               "DTI60": (DWI_GRID, lambda: phantom.dwi_series(DWI_GRID, seed, bvals, bvecs))}
    for number, tag, kind, description in SERIES:
        if kind is None:
            continue
        grid, make = volumes[tag]
        where = nifti_path(data_dir, label, number, tag, description)
        where.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(make().astype(np.float32), np.diag([*grid.spacing, 1.0])), where)
        if kind == "dwi":
            np.savetxt(where.with_name(where.name.replace(".nii.gz", ".bval")), bvals[None], fmt="%g")


def make_store(data_dir: Path, sessions: int = 2000, rated_share: float = 0.25, pictured: int = 1,
               seed: int = 11) -> ReviewData:
    """Fill `data_dir` (made if missing; meant to be empty) with `sessions` synthetic sessions."""
    started = time.perf_counter()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    labels = labels_of(sessions)
    rated = [label for i, label in enumerate(labels) if i % round(1 / rated_share) == 1] if rated_share > 0 else []
    with_pictures = rated[:pictured]
    tables = Tables()
    later: list[tuple[str, datetime]] = []
    for i, label in enumerate(labels):
        day = FIRST_DAY + timedelta(hours=9 * i)
        pipeline_rows(tables, data_dir, label, day, rng)
        if label in with_pictures:
            later.append((label, day))
            continue
        images = image_rows(tables, data_dir, label, day)
        if label in rated:
            for row in review_rows(tables, label, images, day, rng):
                tables.add(row)
    tables.write(data_dir)
    layout = DataLayout(data_dir)
    for label, day in later:  # real files, registered and reviewed as the pipeline and the app do it
        write_phantoms(data_dir, label, seed)
        append_review(layout, label, ensure_review_images(layout, label), day, rng)
    return ReviewData(data_dir, labels, rated, with_pictures, time.perf_counter() - started)


def append_review(layout: DataLayout, label: str, images: list[RatingImageRow], day: datetime,
                  rng: random.Random) -> None:
    """`review_rows` added with MetricStore.append, as the app adds them (ratings and clicks
    pointing at the rating sessions' ids the store gave)."""
    store, rows = layout.metric_store, review_rows(Tables(), label, images, day, rng)
    sittings = [r for r in rows if isinstance(r, RatingSessionRow)]
    given = {old.id: new.id for old, new in zip(sittings, store.append(RatingSessionRow, label, sittings))}
    for row_type in (RatingRow, RatingCoordinateRow, SignOffRow, SeriesDecisionRow):
        mine = [r for r in rows if type(r) is row_type]
        if row_type in (RatingRow, RatingCoordinateRow):
            mine = [replace(r, session=given[r.session]) for r in mine]  # type: ignore[type-var, attr-defined]
        store.append(row_type, label, mine)
