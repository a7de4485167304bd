"""The normalisation pictures (qc/normalisation_picture.py) registered for review under the A2CPS
step SPATIAL_NORMALIZATION beside the series' own pictures (pipeline/review_images.py)."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from datman_flow.export.ratings import export_ratings
from datman_flow.layout import DataLayout
from datman_flow.naming import parse_session_label
from datman_flow.pipeline.persist import series_row
from datman_flow.pipeline.qc import series_rows
from datman_flow.pipeline.review_images import ensure_review_images, review_images
from datman_flow.qc.derivatives import MANIFEST, SPACE, stem_of
from datman_flow.qc.mni_template import load_template
from datman_flow.qc.normalisation_picture import BRAIN_EDGE, WM_EDGE, normalisation_paths
from datman_flow.review.scales import STEP_OF_QC_TYPE, Display, Rating, Step
from datman_flow.store import QcSeriesRow, SeriesRow
from datman_flow.store.review_rows import RatingImageRow, RatingRow, RatingSessionRow

QC_LABEL = "SPN01_CMH_0001_01_01"  # conftest's qc_session


@pytest.fixture()
def session(qc_session, tmp_path):
    """A copy of the QC session with its rows recorded and, for its T1 (series 2), an MNI-space T1
    and a manifest in the derivatives folder, as the QC step leaves them: (layout, T1 NIfTI, MNI T1)."""
    source, measured = qc_session
    data = tmp_path / "data"
    shutil.copytree(source, data, symlinks=True)
    layout = DataLayout(data)
    moved = []
    for q in measured:
        nifti = data / Path(str(q.series.nifti_path)).relative_to(source)
        moved.append(q.__class__(q.series.with_changes(nifti_path=str(nifti)), q.kind, q.status))
    layout.metric_store.replace(SeriesRow, QC_LABEL, [series_row(q.series) for q in moved])
    layout.metric_store.replace(QcSeriesRow, QC_LABEL, series_rows(QC_LABEL, moved))
    t1 = Path(str(next(q for q in moved if q.kind == "anat").series.nifti_path))
    folder = layout.derivatives(parse_session_label(QC_LABEL))
    folder.mkdir(parents=True)
    tpl = load_template()
    mni = folder / f"{stem_of(t1)}_{SPACE}_desc-preproc_T1w.nii.gz"
    nib.save(nib.Nifti1Image((np.asarray(tpl.t1) * 1000).astype(np.int16), tpl.affine), mni)
    (folder / f"{stem_of(t1)}{MANIFEST}").write_text("{}")
    return layout, t1, mni


def test_a_normalised_t1_has_three_pictures_to_rate_under_spatial_normalization(session):
    layout, t1, mni = session
    rows = ensure_review_images(layout, QC_LABEL)
    steps = [(r.series_number, r.step, r.display) for r in rows]
    assert sorted(steps) == sorted([(n, int(STEP_OF_QC_TYPE[k]), d) for n, k in (("2", "anat"), ("3", "fmri"),
                                                                                     ("4", "dwi")) for d in (0, 1, 2)]
                                   + [("2", int(Step.SPATIAL_NORMALIZATION), d) for d in (0, 1, 2)])
    normal = [r for r in rows if r.step == Step.SPATIAL_NORMALIZATION]
    assert int(Step.SPATIAL_NORMALIZATION) == 1
    for row in normal:
        assert row.file1 == str(mni.relative_to(layout.root)) and row.tag == "T1"
        assert row.img == str(normalisation_paths(t1)[row.display].relative_to(layout.root))
        with Image.open(layout.root / row.img) as png:
            assert png.mode == "RGB" and png.size == (row.width, row.height)
            pixels = np.asarray(png)
        colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
        assert BRAIN_EDGE in colours and WM_EDGE in colours  # the template's edges are drawn
        assert 0 <= row.slice < 233
    assert not any(p.suffix == ".png" for p in mni.parent.iterdir())  # nothing unlisted in the derivatives folder


def test_the_normalisation_pictures_are_drawn_once_and_again_after_a_new_normalisation(session):
    layout, _, mni = session
    first = review_images(layout, QC_LABEL)
    assert first.rendered == 12 and first.problems == {}
    again = review_images(layout, QC_LABEL)
    assert again.rendered == 0 and again.rows == first.rows
    later = mni.stat().st_mtime + 10
    os.utime(mni, (later, later))
    redrawn = review_images(layout, QC_LABEL)
    assert redrawn.rendered == 3
    assert len(layout.metric_store.read(RatingImageRow, QC_LABEL)) == 12  # same slices: no new rows


def test_a_t1_without_derivatives_has_only_its_own_pictures(session):
    layout, t1, mni = session
    (mni.parent / f"{stem_of(t1)}{MANIFEST}").unlink()
    rows = ensure_review_images(layout, QC_LABEL)
    assert len(rows) == 9 and not any(r.step == Step.SPATIAL_NORMALIZATION for r in rows)


def test_an_unreadable_mni_t1_is_a_problem_that_leaves_the_raw_pictures(session):
    layout, _, mni = session
    mni.write_bytes(b"not a nifti")
    found = review_images(layout, QC_LABEL)
    assert "normalisation pictures not drawn" in found.problems["2"]
    assert [r.step for r in found.rows if r.series_number == "2"] == [int(STEP_OF_QC_TYPE["anat"])] * 3


def test_the_review_app_serves_the_normalisation_pictures(session):
    from datman_flow.review.pictures import picture_file

    layout, _, _ = session
    rows = [r for r in ensure_review_images(layout, QC_LABEL) if r.step == Step.SPATIAL_NORMALIZATION]
    assert len(rows) == 3
    for row in rows:
        assert picture_file(layout.root, QC_LABEL, Path(row.img).name) == (layout.root / row.img).resolve()


def test_a_rated_normalisation_picture_leaves_in_the_a2cps_tables_under_step_1(session, tmp_path):
    layout, _, mni = session
    [picture] = [r for r in ensure_review_images(layout, QC_LABEL)
                 if r.step == Step.SPATIAL_NORMALIZATION and r.display == Display.Z]
    store = layout.metric_store
    [sitting] = store.append(RatingSessionRow, QC_LABEL, [RatingSessionRow(
        id=0, step=picture.step, user="ana", created=datetime(2026, 3, 4), scan_session=QC_LABEL)])
    store.append(RatingRow, QC_LABEL, [RatingRow(id=0, source_data_issue=False, rating=int(Rating.FAIL),
                                                 img_id=picture.id, session=sitting.id, notes="tilted",
                                                 created=datetime(2026, 3, 4), scan_session=QC_LABEL)])
    out = tmp_path / "a2cps"
    export_ratings(layout.root, out, "SPN01")
    with duckdb.connect() as con:
        rows = con.execute(f"SELECT i.step, i.file1, r.rating, r.notes, s.step FROM read_parquet('{out}/rating.parquet') r "
                           f"JOIN read_parquet('{out}/image.parquet') i ON i.id = r.img_id "
                           f"JOIN read_parquet('{out}/session.parquet') s ON s.id = r.session").fetchall()
    assert rows == [(1, str(mni.relative_to(layout.root)), int(Rating.FAIL), "tilted", 1)]
