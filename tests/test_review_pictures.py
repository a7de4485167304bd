"""The pictures reviewers rate: three PNGs per measured series beside its NIfTI, oriented as
documented (a click maps back to the voxel it shows), registered once in `rating_images`, drawn
again only when missing or older than the NIfTI; a series without its NIfTI is skipped."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from datman_flow.layout import DataLayout
from datman_flow.pipeline.persist import series_row
from datman_flow.pipeline.qc import series_rows, with_review_images
from datman_flow.pipeline.review_images import ensure_review_images, review_images
from datman_flow.qc.review_geometry import (
    LONG_SIDE,
    click_to_voxel,
    oriented_plane,
    slice_axes,
    upscale,
    voxel_of_click,
)
from datman_flow.qc.review_pictures import first_b0, picture_paths, render_review_pictures, shown_volume
from datman_flow.review.scales import STEP_OF_QC_TYPE, Display
from datman_flow.store import MetricStore, QcSeriesRow, SeriesRow
from datman_flow.store.review_rows import RatingImageRow
from datman_flow.store.table_cache import TableCache

QC_LABEL = "SPN01_CMH_0001_01_01"  # conftest's qc_session


@pytest.fixture()
def session(qc_session, tmp_path):
    """A copy of the QC session's data folder with its series and qc_series rows recorded, as the
    pipeline leaves them: (layout, {series number: SeriesQC with the copy's NIfTI path})."""
    source, measured = qc_session
    data = tmp_path / "data"
    shutil.copytree(source, data, symlinks=True)
    layout = DataLayout(data)
    moved = {}
    for q in measured:
        nifti = data / Path(str(q.series.nifti_path)).relative_to(source)
        moved[q.series.series_number] = q.__class__(q.series.with_changes(nifti_path=str(nifti)), q.kind, q.status)
    layout.metric_store.replace(SeriesRow, QC_LABEL, [series_row(q.series) for q in moved.values()])
    layout.metric_store.replace(QcSeriesRow, QC_LABEL, series_rows(QC_LABEL, list(moved.values())))
    return layout, moved


def stored(layout: DataLayout) -> list[RatingImageRow]:
    return layout.metric_store.read(RatingImageRow, QC_LABEL)


def test_each_measured_series_has_three_pictures_of_its_brain(session):
    layout, series = session
    rows = ensure_review_images(layout, QC_LABEL)
    assert [(r.series_number, r.display) for r in rows] == [(n, d) for n in ("2", "3", "4") for d in (0, 1, 2)]
    assert len({r.id for r in rows}) == 9 and all(r.id > 0 for r in rows)
    for row in rows:
        q = series[row.series_number]
        nifti = Path(str(q.series.nifti_path))
        assert row.file1 == str(nifti.relative_to(layout.root)) and row.file2 is None
        assert row.img == str(picture_paths(nifti)[row.display].relative_to(layout.root))
        assert row.img.endswith(("_review-x.png", "_review-y.png", "_review-z.png")[row.display])
        assert row.step == STEP_OF_QC_TYPE[q.kind] and row.tag == q.series.tag and row.scan_session == QC_LABEL
        with Image.open(layout.root / row.img) as png:
            assert png.format == "PNG" and png.mode == "L" and png.size == (row.width, row.height)
            pixels = np.asarray(png, dtype=np.float64)
        assert max(row.width, row.height) == LONG_SIDE
        image = nib.load(nifti)
        axis = slice_axes(image.affine, row.display).axis
        assert 0 <= row.slice < image.shape[axis]
        h, w = pixels.shape  # the brain fills the middle, the corners are background
        centre = pixels[h // 3: 2 * h // 3, w // 3: 2 * w // 3]
        corners = np.concatenate([pixels[:h // 10, :w // 10].ravel(), pixels[-(h // 10):, -(w // 10):].ravel()])
        assert centre.mean() > 60 and centre.mean() > 3 * corners.mean() + 20, (row.img, centre.mean(), corners.mean())
        assert pixels.max() > 200  # windowed at the volume's 99th percentile: bright tissue is near white


def test_a_second_call_draws_and_registers_nothing(session):
    layout, _ = session
    first = ensure_review_images(layout, QC_LABEL)
    times = {r.img: (layout.root / r.img).stat().st_mtime_ns for r in first}
    again = review_images(layout, QC_LABEL)
    assert again.rendered == 0 and again.problems == {}
    assert again.rows == first and stored(layout) == first
    assert {r.img: (layout.root / r.img).stat().st_mtime_ns for r in first} == times


def test_rows_held_in_memory_spare_the_store_reads(session, monkeypatch):
    layout, _ = session
    first = ensure_review_images(layout, QC_LABEL)
    caches = {t: TableCache(layout.metric_store.parquet_dir, t) for t in (QcSeriesRow, SeriesRow, RatingImageRow)}
    held = {t: cache.rows() for t, cache in caches.items()}

    def no_read(*args, **kwargs):
        raise AssertionError("read from the store although the rows were given")

    monkeypatch.setattr(MetricStore, "read", no_read)
    assert ensure_review_images(layout, QC_LABEL, qc_series=held[QcSeriesRow], series=held[SeriesRow],
                                images=held[RatingImageRow]) == first
    other = [replace(r, scan_session="SPN01_CMH_0002_01_01", id=r.id + 100) for r in held[RatingImageRow]]
    assert ensure_review_images(layout, QC_LABEL, qc_series=held[QcSeriesRow], series=held[SeriesRow],
                                images=held[RatingImageRow] + other) == first  # other sessions' rows ignored


def test_two_callers_at_once_register_each_picture_once(session):
    layout, _ = session
    start, results, errors = threading.Barrier(3), [], []

    def call() -> None:
        try:
            start.wait(timeout=30)
            results.append(ensure_review_images(layout, QC_LABEL))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(results) == 3
    rows = stored(layout)
    assert len(rows) == 9 and len({(r.img, r.display) for r in rows}) == 9
    assert all(result == sorted(rows, key=lambda r: (int(r.series_number), r.display)) for result in results)


def test_a_series_whose_nifti_vanished_is_skipped_with_a_warning(session, caplog):
    layout, series = session
    ensure_review_images(layout, QC_LABEL)
    Path(str(series["3"].series.nifti_path)).unlink()
    for png in picture_paths(Path(str(series["4"].series.nifti_path))).values():
        png.unlink()  # drawn again: the other series go on
    with caplog.at_level(logging.WARNING, logger="datman_flow.pipeline.review_images"):
        rows = ensure_review_images(layout, QC_LABEL)
    assert sorted({r.series_number for r in rows}) == ["2", "4"] and len(rows) == 6
    assert all((layout.root / r.img).is_file() for r in rows)
    assert any("series 3" in m and "is gone" in m for m in caplog.messages), caplog.messages
    assert len(stored(layout)) == 9  # nothing registered twice, the vanished series' rows kept


def test_a_series_converted_again_is_drawn_again(session):
    layout, series = session
    first = ensure_review_images(layout, QC_LABEL)
    nifti = Path(str(series["2"].series.nifti_path))
    png = picture_paths(nifti)[0]
    before = png.stat().st_mtime_ns
    later = before + 10_000_000_000  # converted again after its pictures were drawn
    os.utime(nifti, ns=(later, later))
    found = review_images(layout, QC_LABEL)
    assert found.rendered == 3 and png.stat().st_mtime_ns > before
    assert found.rows == first  # the same slices: the rows (and the ratings on them) stand


def test_the_qc_step_records_a_series_whose_pictures_failed_and_goes_on(session):
    layout, series = session
    broken = Path(str(series["4"].series.nifti_path))
    broken.write_bytes(b"not a NIfTI")
    out = with_review_images(layout, QC_LABEL, list(series.values()))
    by_number = {q.series.series_number: q for q in out}
    assert by_number["4"].status == "measured" and "no pictures to rate" in by_number["4"].message
    assert "not readable as NIfTI" in by_number["4"].message and by_number["2"].message == ""
    recorded = {r.series_number: r for r in layout.metric_store.read(QcSeriesRow, QC_LABEL)}
    assert recorded["4"].status == "measured" and "no pictures to rate" in recorded["4"].message
    assert sorted({r.series_number for r in stored(layout)}) == ["2", "3"]


def test_a_nifti_path_outside_the_session_folder_is_never_drawn_beside(session, tmp_path):
    layout, series = session
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    stray = outside / "x.nii.gz"
    shutil.copy(str(series["2"].series.nifti_path), stray)
    record = series["2"].series.with_changes(nifti_path=str(stray))
    layout.metric_store.replace(SeriesRow, QC_LABEL, [series_row(record), *(series_row(series[n].series) for n in "34")])
    found = review_images(layout, QC_LABEL)
    assert "not inside" in found.problems["2"] and not list(outside.glob("*.png"))
    assert sorted({r.series_number for r in found.rows}) == ["3", "4"]


# ---- geometry: what the pictures show and where a click lands --------------------------------------

AFFINES = {
    "RAS": np.diag([2.0, 2.0, 2.0, 1.0]),
    "LPS": np.diag([-1.5, -1.5, 3.0, 1.0]),
    "sagittal PIR": np.array([[0, 0, -1.0, 0], [1.2, 0, 0, 0], [0, -1.2, 0, 0], [0, 0, 0, 1]]),
    "oblique ASL": np.array([[0, 0.1, -2.0, 0], [1.95, 0.3, 0.1, 0], [-0.3, 1.95, 0, 0], [0, 0, 0, 1]]),
}


@pytest.mark.parametrize("name", AFFINES)
def test_a_click_maps_back_to_the_voxel_it_shows_and_the_world_grows_right_and_up(name):
    affine = AFFINES[name]
    shape = (23, 31, 17)
    codes = np.arange(np.prod(shape)).reshape(shape)  # each voxel's value names it
    rng = np.random.default_rng(5)
    for display in Display:
        axes = slice_axes(affine, display)
        index = shape[axes.axis] // 3
        plane = oriented_plane(codes, axes, index)
        width, height = (LONG_SIDE, 300) if plane.shape[1] > plane.shape[0] else (300, LONG_SIDE)
        shown = upscale(plane, width, height)
        for x, y in rng.uniform(0, 1, size=(200, 2)) * (width, height):
            voxel = voxel_of_click(axes, shape, index, width, height, float(x), float(y))
            assert shown[int(y), int(x)] == codes[voxel], (name, display, x, y)
        across, upward = {Display.X: (1, 2), Display.Y: (0, 2), Display.Z: (0, 1)}[display]
        left = voxel_of_click(axes, shape, index, width, height, 1.0, height / 2)
        right = voxel_of_click(axes, shape, index, width, height, width - 1.0, height / 2)
        top = voxel_of_click(axes, shape, index, width, height, width / 2, 1.0)
        bottom = voxel_of_click(axes, shape, index, width, height, width / 2, height - 1.0)
        world = nib.affines.apply_affine
        assert world(affine, right)[across] > world(affine, left)[across], (name, display)
        assert world(affine, top)[upward] > world(affine, bottom)[upward], (name, display)


def test_an_lps_head_is_shown_with_its_right_on_the_right_and_the_front_up(tmp_path):
    """A box 'head' stored in LPS order (voxel i grows to the patient's left, j to the back), with
    a bright block on its right and at its back: the axial picture (front up) shows it bottom right."""
    shape = (60, 70, 40)
    affine = np.array([[-3.0, 0, 0, 90], [0, -3.0, 0, 105], [0, 0, 3.0, -60], [0, 0, 0, 1]])  # head centre at 0
    volume = np.zeros(shape, dtype=np.float32)
    volume[10:50, 10:60, 5:35] = 100.0
    volume[10:20, 45:60, 15:25] = 400.0
    nifti = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), nifti)
    pictures = {p.display: p for p in render_review_pictures(nifti)}
    world = nib.affines.apply_affine(affine, [15, 52, 20])
    assert world[0] > 0 and world[1] < 0  # the block is on the right, posterior
    with Image.open(pictures[Display.Z].path) as png:
        axial = np.asarray(png)
    rows, cols = np.nonzero(axial == 255)
    assert cols.mean() > axial.shape[1] / 2 and rows.mean() > axial.shape[0] / 2  # right, and posterior = down
    assert (pictures[Display.Z].width, pictures[Display.Z].height) == (round(LONG_SIDE * 60 / 70), LONG_SIDE)
    voxel = click_to_voxel(nifti, Display.Z, pictures[Display.Z].slice, pictures[Display.Z].width,
                           pictures[Display.Z].height, float(cols.mean()), float(rows.mean()))
    assert volume[voxel] == 400.0


def test_a_dwi_series_is_shown_by_its_first_b0_and_a_bold_by_its_first_volumes(tmp_path):
    shape = (20, 20, 10)
    volumes = np.zeros((*shape, 14), dtype=np.float32)
    volumes[4:16, 4:16, 2:8, :] = np.arange(1, 15, dtype=np.float32) * 10
    nifti = tmp_path / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(volumes, np.eye(4)), nifti)
    bval = tmp_path / "dwi.bval"
    bval.write_text(" ".join(["1000", "1000", "5"] + ["1000"] * 11) + "\n")
    assert first_b0(bval, 14) == 2 and first_b0(bval, 13) is None
    image = nib.load(nifti)
    assert shown_volume(image, nifti, "dwi")[10, 10, 5] == 30.0  # volume 2, the b=0
    assert shown_volume(image, nifti, "fmri")[10, 10, 5] == pytest.approx(55.0)  # mean of volumes 0-9
    bval.write_text("1000 " * 13 + "oops")
    assert shown_volume(image, nifti, "dwi")[10, 10, 5] == pytest.approx(55.0)


def test_a_real_t1_shows_its_brain(real_dicom, tmp_path):
    """The Philips MPRAGE of ../shared/dicom (256x256x170, 1 mm), converted with dcm2niix."""
    from datman_flow.dicom.convert import convert_series, find_dcm2niix

    series = tmp_path / "1301"
    series.mkdir()
    for dcm in sorted((real_dicom("philips_ingenia") / "In").glob("1301_*")):
        shutil.copy(dcm, series / dcm.name)
    outcome = convert_series(find_dcm2niix(), series, tmp_path / "nii", "t1", expected_files=170)
    assert outcome.status == "converted", outcome.message
    nifti = Path(str(outcome.nifti_path))
    shape = nib.load(nifti).shape
    pictures = render_review_pictures(nifti, "anat")
    assert [(p.display, p.width, p.height) for p in pictures] == [(0, 512, 512), (1, 340, 512), (2, 340, 512)]
    for p in pictures:
        with Image.open(p.path) as png:
            pixels = np.asarray(png, dtype=np.float64)
        h, w = pixels.shape
        assert pixels[h // 3: 2 * h // 3, w // 3: 2 * w // 3].mean() > 50, p
        assert 0.25 * shape[p.display] < p.slice < 0.75 * shape[p.display]  # RAS-stored: voxel axis = display
