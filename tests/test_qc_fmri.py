"""BOLD metrics (datman_flow.qc.fmri) and realignment (datman_flow.qc.realign) against known truth:
synthetic motion, white noise, constant signal plus noise, injected dummy volumes, hand-made
ghosts/spikes, and the real Philips and Siemens XA30 BOLD series of ../shared/dicom (metrics in
range, degraded copies scoring worse, the picture drawn from the metrics' own maps)."""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from datman_flow.dicom.convert import Dcm2niixMissing, convert_series, find_dcm2niix
from datman_flow.qc import epi_mask, fmri, measure
from datman_flow.qc.fmri_picture import fmri_picture
from datman_flow.qc.realign import apply_rigid, framewise_displacement, matrix_params, realign, rigid_matrix
from datman_flow.samples.phantom import Grid, bold_series

GRID = Grid(shape=(64, 64, 40), spacing=(3.5, 3.5, 3.5))
ZOOMS = GRID.spacing


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    """A smooth (band-limited) EPI-contrast head, brain ~500-750: the phantom's first volume,
    Gaussian-smoothed (the phantom's own edges are a third of a voxel wide, i.e. aliased)."""
    volume = bold_series(GRID, seed=7, n_volumes=1)[..., 0].astype(np.float32)
    return ndi.gaussian_filter(volume, 0.6)


def motion_truth(n: int) -> np.ndarray:
    """Smooth drifts of ~0.5 mm / 0.5 degree plus a sudden 1.5 mm / 1 degree jump half-way."""
    t = np.arange(n, dtype=float)
    p = np.zeros((n, 6))
    p[:, 0] = 0.6 * np.sin(t / 3.0)
    p[:, 1] = 0.4 * np.cos(t / 4.0) - 0.4
    p[:, 2] = 0.5 * t / n
    p[:, 3] = np.radians(0.6) * np.sin(t / 5.0)
    p[:, 4] = np.radians(0.5) * np.sin(t / 2.0)
    p[:, 5] = np.radians(0.6) * (np.cos(t / 3.0) - 1.0)
    p[n // 2:] += [1.5, -1.0, 0.5, np.radians(1.0), 0.0, np.radians(-0.5)]
    return p


def moved_series(head: np.ndarray, truth: np.ndarray, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vols = [apply_rigid(head, p, ZOOMS) + rng.normal(0.0, noise, head.shape).astype(np.float32) for p in truth]
    return np.stack(vols, axis=3)


def as_image(data: np.ndarray, zooms=ZOOMS, tr: float = 2.0) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data.astype(np.float32), np.diag([*zooms, 1.0]))
    img.header.set_zooms((*zooms, tr))
    return img


# ---------------------------------------------------------------- realignment


@pytest.mark.parametrize("noise", [0.0, 2.0])
def test_realign_recovers_known_motion(head, noise):
    truth = motion_truth(24)
    estimate = realign(moved_series(head, truth, noise), ZOOMS)
    fd_true, fd_est = framewise_displacement(truth), framewise_displacement(estimate)
    assert np.abs(fd_est - fd_true).max() < 0.05  # every frame, including the 3.5 mm-equivalent jump
    assert abs(fd_est.mean() - fd_true.mean()) < 0.01
    assert np.abs(estimate[:, :3] - truth[:, :3]).max() < 0.05  # mm
    assert np.degrees(np.abs(estimate[:, 3:] - truth[:, 3:])).max() < 0.05  # degrees


def test_realign_precision_at_realistic_noise(head):
    """Single-volume SNR ~75: the per-frame error is estimation noise (it scales with sigma,
    measured 0.07-0.10 mm at most here), the mean FD stays within 0.05 mm."""
    truth = motion_truth(24)
    estimate = realign(moved_series(head, truth, 8.0, seed=2), ZOOMS)
    fd_true, fd_est = framewise_displacement(truth), framewise_displacement(estimate)
    assert abs(fd_est.mean() - fd_true.mean()) < 0.05
    assert np.abs(fd_est - fd_true).max() < 0.15


def test_realign_large_jump_and_other_references(head):
    truth = motion_truth(12)
    truth[6:] += [4.0, -3.0, 2.0, np.radians(3.0), np.radians(-2.0), np.radians(2.0)]
    data = moved_series(head, truth, 2.0, seed=1)
    fd_est = framewise_displacement(realign(data, ZOOMS))
    assert np.abs(fd_est - framewise_displacement(truth)).max() < 0.05
    # against volume 5, the truth is each volume's transform composed with the inverse of volume 5's
    middle = realign(data, ZOOMS, reference=5)
    relative = np.array([matrix_params(rigid_matrix(p) @ np.linalg.inv(rigid_matrix(truth[5]))) for p in truth])
    assert np.abs(middle[5]).max() < 1e-3  # the reference volume does not move
    assert np.abs(middle[:, :3] - relative[:, :3]).max() < 0.05
    assert np.degrees(np.abs(middle[:, 3:] - relative[:, 3:])).max() < 0.1  # the phantom is nearly round in x-z
    fd_middle, fd_relative = framewise_displacement(middle), framewise_displacement(relative)
    assert np.abs(np.delete(fd_middle - fd_relative, 5)).max() < 0.05
    assert fd_middle[5] == pytest.approx(fd_relative[5], rel=0.01)  # the 18.7 mm jump


def test_realign_to_the_mean(head):
    truth = motion_truth(16)
    estimate = realign(moved_series(head, truth, 2.0, seed=3), ZOOMS, reference="mean")
    assert np.abs(framewise_displacement(estimate) - framewise_displacement(truth)).max() < 0.05


def test_framewise_displacement_definition():
    params = np.zeros((3, 6))
    params[1] = [0.1, -0.2, 0.0, 0.001, 0.0, -0.002]
    fd = framewise_displacement(params)
    assert fd.shape == (2,)
    assert fd[0] == pytest.approx(0.3 + 50 * 0.003)
    assert fd[1] == pytest.approx(fd[0])


# ---------------------------------------------------------------- temporal measures


def test_dvars_of_white_noise_is_one():
    rng = np.random.default_rng(3)
    series = 1000.0 + 10.0 * rng.standard_normal((4000, 200))
    std, nstd, vstd = fmri.dvars(series)
    assert std.shape == nstd.shape == vstd.shape == (199,)
    assert std.mean() == pytest.approx(1.0, abs=0.05)
    assert vstd.mean() == pytest.approx(1.0, abs=0.05)
    # intensities are scaled to a median of 1000, so plain DVARS is sqrt(2) * sigma
    assert nstd.mean() == pytest.approx(np.sqrt(2) * 10.0, rel=0.05)


def test_tsnr_of_constant_signal_plus_noise():
    rng = np.random.default_rng(4)
    series = 800.0 + 16.0 * rng.standard_normal((3000, 150))
    assert np.median(fmri.tsnr_map(series)) == pytest.approx(50.0, rel=0.03)


def test_metrics_of_a_still_head_with_white_noise(head):
    rng = np.random.default_rng(5)
    sigma = 12.0
    data = head[..., None] + sigma * rng.standard_normal(head.shape + (60,)).astype(np.float32)
    result = fmri.fmri_metrics(as_image(data))
    m = result.metrics
    assert m["dummy_trs"] == 0
    assert m["dvars_std"] == pytest.approx(1.0, abs=0.15)
    assert m["dvars_vstd"] == pytest.approx(1.0, abs=0.15)
    brain = epi_mask.brain_mask(head, fmri.common.head_mask(head, ZOOMS))
    assert m["tsnr"] == pytest.approx(np.median(head[brain]) / sigma, rel=0.1)
    assert m["fd_mean"] < 0.15  # estimation noise only (SNR ~50 per volume): measured 0.08
    assert m["aor"] < 0.01
    assert m["gcor"] < 0.01
    assert len(result.extras["motion_params"]) == 60 and len(result.extras["fd"]) == 59


def test_injected_dummy_volumes_are_detected():
    data = bold_series(GRID, seed=9, n_volumes=30).astype(np.float32)
    data[..., :3] *= 1.6
    assert fmri.count_dummies(data.reshape(-1, 30).mean(axis=0)) == 3
    result = fmri.fmri_metrics(as_image(data))
    assert result.metrics["dummy_trs"] == 3
    assert result.metrics["size_t"] == 27
    assert len(result.extras["motion_params"]) == 27
    assert len(result.extras["global_signal"]) == 30


def test_count_dummies_definition():
    signal = np.array([130.0, 112.0, 100.5, 100.0, 99.0, 101.0, 100.2, 99.5, 100.4, 99.8])
    assert fmri.count_dummies(signal) == 2
    assert fmri.count_dummies(np.full(10, 5.0)) == 0


def test_gsr_finds_a_ghost_along_y():
    image = np.full((40, 40, 10), 2.0)
    mask = np.zeros(image.shape, dtype=bool)
    mask[12:28, 10:30, :] = True
    image[mask] = 100.0
    image[12:28, 30:40, :] = 7.0  # a half-FOV ghost of the lower part, along y only
    image[12:28, 0:10, :] = 7.0
    assert fmri.gsr(image, mask, 1) == pytest.approx(0.05, abs=1e-6)
    assert fmri.gsr(image, mask, 0) < 0.01


def test_outlier_fraction_and_quality_index():
    rng = np.random.default_rng(6)
    series = 500.0 + 5.0 * rng.standard_normal((2000, 80))
    series[:600, 40] += 60.0  # 30 % of the voxels spike in volume 40
    aor = fmri.outlier_fraction(series)
    assert aor[40] == pytest.approx(0.3, abs=0.01)
    assert np.delete(aor, 40).max() < 0.01
    pattern = rng.uniform(100, 1000, 2000)
    stable = pattern[:, None] + rng.standard_normal((2000, 20))
    stable[:, 7] = rng.permutation(pattern)
    aqi = fmri.quality_index(stable)
    assert aqi[7] > 0.8
    assert np.delete(aqi, 7).max() < 0.01


def test_gcor_extremes():
    rng = np.random.default_rng(8)
    shared = rng.standard_normal(100)
    assert fmri.gcor(np.tile(shared, (50, 1)) * rng.uniform(1, 3, (50, 1)) + 7) == pytest.approx(1.0)
    assert fmri.gcor(rng.standard_normal((2000, 100))) == pytest.approx(1 / 2000, rel=0.2)


# ---------------------------------------------------------------- real BOLD series


def convert(archive: Path, files: list[Path], out: Path, stem: str) -> Path:
    try:
        tool = find_dcm2niix()
    except Dcm2niixMissing as exc:
        pytest.skip(str(exc))
    links = out / f"{stem}_dicom"
    links.mkdir(parents=True)
    for path in files:
        (links / path.name).symlink_to(path)
    outcome = convert_series(tool, links, out / "nifti", stem, expected_files=len(files))
    assert outcome.status == "converted", outcome.message
    return Path(outcome.nifti_path)


@pytest.fixture(scope="module")
def philips_bold(real_dicom, tmp_path_factory) -> tuple[Path, fmri.FmriAnalysis, float]:
    root = real_dicom("philips_ingenia")
    files = sorted((root / "In").glob("2101_*.dcm"))
    assert len(files) == 4725
    nifti = convert(root, files, tmp_path_factory.mktemp("philips_bold"), "philips_rest")
    start = time.perf_counter()
    analysis = fmri.fmri_analysis(nifti)
    return nifti, analysis, time.perf_counter() - start


def assert_typical_3t_bold(result: fmri.QCResult) -> None:
    """MRIQC's typical 3T ranges for BOLD, tSNR apart (its bound depends on the series)."""
    m = result.metrics
    assert m["fd_mean"] < 1.0
    assert 0.8 <= m["dvars_std"] <= 2.0
    assert 0.8 <= m["dvars_vstd"] <= 2.0
    assert abs(m["gsr_x"]) < 0.2 and abs(m["gsr_y"]) < 0.2
    assert 0 <= m["aor"] < 0.05 and 0 <= m["aqi"] < 0.05
    assert 0.3 < m["efc"] < 0.8
    assert 1.0 < m["fwhm_avg"] < 4.0  # voxels, as MRIQC reports them
    assert 900 < result.extras["brain_mask_ml"] < 2000
    assert m["summary_fg_median"] > 10 * max(m["summary_bg_median"], 1.0)


def test_philips_bold_in_mriqc_ranges(philips_bold):
    nifti, analysis, seconds = philips_bold
    result = analysis.result
    m = result.metrics
    print(f"\nPhilips BOLD 96x96x63x75 metrics in {seconds:.1f} s: "
          + ", ".join(f"{k}={m[k]:.4g}" for k in ("dummy_trs", "tsnr", "fd_mean", "fd_perc", "dvars_std",
                                                   "dvars_vstd", "gsr_x", "gsr_y", "aor", "aqi", "gcor",
                                                   "efc", "snr", "fwhm_avg")))
    assert m["size_x"] == 96 and m["size_y"] == 96 and m["size_z"] == 63
    assert m["size_t"] + m["dummy_trs"] == 75
    assert 20 <= m["tsnr"] <= 120
    assert_typical_3t_bold(result)


def test_philips_bold_picture(philips_bold, tmp_path):
    _, analysis, _ = philips_bold
    out = fmri_picture(analysis, tmp_path / "qc" / "bold.png", name="philips_rest")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 50_000
    assert [p.name for p in out.parent.iterdir()] == ["bold.png"]  # no temporary file left


def degraded(nifti: Path, noise: float, motion: float, seed: int = 11) -> fmri.QCResult:
    """Metrics of a copy of ``nifti`` with white noise of ``noise`` times the bright-tissue median
    added to every volume and/or a random-walk head motion (steps of ``motion`` x 0.25 mm and
    x 0.23 degree per volume and axis) applied by cubic-spline resampling."""
    img = nib.load(nifti)
    data = img.get_fdata(dtype=np.float32, caching="unchanged")  # never the cached array: it is modified
    zooms = img.header.get_zooms()[:3]
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 1.0, (data.shape[3], 6)) * [0.25, 0.25, 0.25, 0.004, 0.004, 0.004]
    walk = np.cumsum(motion * steps, axis=0)
    noise_sd = noise * float(np.median(data[data > np.percentile(data, 60)]))
    for n in range(data.shape[3]):
        if motion:
            data[..., n] = apply_rigid(data[..., n], walk[n], zooms)
        if noise:
            data[..., n] += rng.normal(0.0, noise_sd, data.shape[:3]).astype(np.float32)
    return fmri.fmri_metrics(nib.Nifti1Image(data, img.affine, img.header))


def test_degraded_philips_copy_scores_worse(philips_bold):
    nifti, analysis, _ = philips_bold
    result = analysis.result
    worse = degraded(nifti, noise=0.04, motion=1.0)
    assert worse.metrics["tsnr"] < 0.8 * result.metrics["tsnr"]
    assert worse.metrics["fd_mean"] > result.metrics["fd_mean"] + 0.2


@pytest.fixture(scope="module")
def xa30_bold(real_dicom, tmp_path_factory) -> tuple[Path, fmri.FmriAnalysis]:
    root = real_dicom("siemens_xa30")
    files = sorted((root / "In" / "7_func-bold_task-fa_run-1").iterdir())
    assert len(files) == 20
    nifti = convert(root, files, tmp_path_factory.mktemp("xa30_bold"), "xa30_bold")
    return nifti, fmri.fmri_analysis(nifti)


def test_siemens_xa30_bold_in_mriqc_ranges(xa30_bold):
    """Siemens Prisma (XA30, 64-channel coil), 64x64x33 voxels of 3.4 mm, TR 1 s, multiband 3,
    20 volumes. Measured: dummy_trs 1, tsnr 119.8, fd_mean 0.20, dvars_std 1.11, dvars_vstd 1.09,
    gsr_y 0.054, aor 0.013, aqi 0.0005, efc 0.51, fwhm_avg 2.84 voxels, brain mask 1,261 ml."""
    _, analysis = xa30_bold
    result = analysis.result
    m = result.metrics
    assert result.kind == "fmri"
    assert m["size_x"] == 64 and m["size_y"] == 64 and m["size_z"] == 33
    assert m["size_t"] + m["dummy_trs"] == 20
    assert all(np.isfinite(v) for v in m.values())
    # tSNR as MRIQC computes it (mriqc workflows/functional/base.py: nipype TSNR without
    # regress_poly, i.e. no detrending, on the head-motion-corrected series after the
    # NonSteadyStateDetector's volumes are dropped; FunctionalQC takes the median in the brain
    # mask). The usual 20-120 rule of thumb is for voxels of 2-3 mm and runs of minutes. This
    # run has 3x the Philips voxel volume (39 vs 13 mm3; thermal SNR grows with voxel volume)
    # and lasts 19 s, so slow drifts barely enter the std: a 19-volume window of the Philips run
    # gives a tSNR 11 % above its whole-run 54.5, and here linear detrending alone would give 130.
    # 119.8 is therefore expected, not a fault, and sits on the rule's edge; the ceiling is 150
    # (about 1.25x the rule) so that harmless changes do not flip the test, while a std gone
    # wrong by a factor (the definition is pinned on synthetic data above) still fails it.
    assert 20 <= m["tsnr"] <= 150
    assert_typical_3t_bold(result)


def test_degraded_xa30_copies_score_worse(xa30_bold):
    """Noise lowers tSNR and leaves FD alone; motion raises FD (the imposed random walk alone has
    a mean FD of 1.05 mm). Measured: noise 120 -> 35 tSNR at FD 0.20; motion FD 0.20 -> 1.07 mm.
    DVARS is not asserted: standardised by each voxel's own noise, it falls towards 1 when white
    noise is added (1.11 -> 0.99)."""
    nifti, analysis = xa30_bold
    m = analysis.result.metrics
    noisy = degraded(nifti, noise=0.04, motion=0.0).metrics
    assert noisy["tsnr"] < 0.5 * m["tsnr"]
    assert noisy["fd_mean"] == pytest.approx(m["fd_mean"], abs=0.05)
    moved = degraded(nifti, noise=0.0, motion=1.0).metrics
    assert moved["fd_mean"] > m["fd_mean"] + 0.5
    assert moved["tsnr"] < m["tsnr"]


def test_bold_picture_reuses_the_metrics_maps(xa30_bold, tmp_path, monkeypatch):
    nifti, analysis = xa30_bold
    measured = measure.analyse("fmri", nifti)
    assert measured.result.metrics == pytest.approx(analysis.result.metrics)
    reuse = measured.reuse
    assert isinstance(reuse, fmri.FmriAnalysis)
    assert reuse.series.shape == (int(reuse.brain.sum()), int(measured.result.metrics["size_t"]))
    assert max(a.ndim for a in (reuse.mean_epi, reuse.std_epi, reuse.brain, reuse.series)) <= 3  # no 4D copy

    def no_resampling(*args, **kwargs):
        raise AssertionError("the picture resampled the series again")

    with monkeypatch.context() as patch:
        for name in ("reanalyse", "reslice", "resliced_moments", "load_bold"):
            patch.setattr(fmri, name, no_resampling)
        png = measure.picture("fmri", nifti, measured, tmp_path / "reused.png")
    assert png.stat().st_size > 20_000

    # from a bare result (e.g. the metrics computed earlier), only the resampling is redone
    again = fmri.reanalyse(nifti, measured.result)
    assert np.array_equal(again.brain, reuse.brain)
    assert np.allclose(again.mean_epi, reuse.mean_epi, atol=1e-3 * float(reuse.mean_epi.max()))
    assert measure.picture("fmri", nifti, measured.result, tmp_path / "redone.png").stat().st_size > 20_000
