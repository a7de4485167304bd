"""Diffusion QC metrics: synthetic series with known truth, then the Philips DTI and the XA30 DWI."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from datman_flow.qc.dwi import count_directions, dwi_metrics, shell_labels
from datman_flow.qc.dwi_picture import dwi_picture
from datman_flow.qc.realign import apply_rigid
from datman_flow.samples import phantom
from datman_flow.samples.sessions import DWI_GRID, dwi_scheme

NOISE = 0.015 * 1400.0  # the phantom's Rician sigma (dwi_series: 0.015 * scale)


def write_dwi(folder: Path, name: str, data: np.ndarray, bvals, bvecs, affine=None, header=None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*DWI_GRID.spacing, 1.0]) if affine is None else affine
    nifti = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(data, affine, header), nifti)
    np.savetxt(folder / f"{name}.bval", np.asarray(bvals, dtype=float)[None], fmt="%g")
    np.savetxt(folder / f"{name}.bvec", np.asarray(bvecs, dtype=float).T, fmt="%.6f")
    return [nifti, folder / f"{name}.bval", folder / f"{name}.bvec"]


@pytest.fixture(scope="module")
def synthetic():
    bvals, bvecs = dwi_scheme()
    return phantom.dwi_series(DWI_GRID, 7, bvals, bvecs), bvals, bvecs


# ---- pure helpers ---------------------------------------------------------------------------------

def test_shell_labels_cluster_nearby_bvalues():
    bvals = np.array([0, 5, 995, 1000, 1010, 1990, 2005, 50, 3000, 51])
    assert shell_labels(bvals).tolist() == [0, 0, 1000, 1000, 1000, 2000, 2000, 0, 3000, 100]


def test_count_directions_merges_antipodal_and_repeated():
    dirs = phantom.gradient_directions(10)
    bvecs = np.vstack([dirs, -dirs[:3], dirs[:2] * 1.0001, np.zeros((2, 3))])
    assert count_directions(bvecs) == 10


# ---- synthetic truth ------------------------------------------------------------------------------

def test_shells_b0_and_directions(tmp_path, synthetic):
    data, bvals, bvecs = synthetic
    result = dwi_metrics(*write_dwi(tmp_path, "clean", data, bvals, bvecs))
    m, x = result.metrics, result.extras
    assert result.kind == "dwi"
    assert (m["n_shells"], m["n_b0"], m["n_directions"], m["n_volumes"]) == (1, 2, 12, 14)
    assert x["shells"][0]["bvalue"] == 1000 and x["shells"][0]["n_volumes"] == 12
    assert x["n_directions_per_shell"] == {"1000": 12}
    assert x["b0_volumes"] == [0, 7] and x["bvalues"] == bvals.tolist()
    assert m["dropout_slices"] == 0 and m["spikes"] == 0
    assert np.array(x["slice_signal"]).shape == (14, DWI_GRID.shape[2])
    assert x["noise_method"] == "b0_variance" and m["sigma_b0"] == pytest.approx(NOISE, rel=0.05)
    for key in ("tsnr_b0", "tsnr_b1000", "fd_mean", "fd_max", "efc", "fber", "summary_fg_mean", "summary_bg_mad"):
        assert np.isfinite(m[key]), key
    assert m["fd_mean"] < 0.1  # the phantom does not move


def test_one_planted_dropout_is_found_and_nothing_else(tmp_path, synthetic):
    data, bvals, bvecs = synthetic
    bad = data.copy()
    bad[:, :, 12, 4] = np.rint(bad[:, :, 12, 4] * 0.3).astype(bad.dtype)
    result = dwi_metrics(*write_dwi(tmp_path, "dropout", bad, bvals, bvecs))
    assert result.metrics["dropout_slices"] == 1
    assert [cell[:2] for cell in result.extras["dropouts"]] == [[4, 12]]
    assert result.extras["dropouts"][0][2] < -10
    tested = sum(v is not None for row in result.extras["slice_z"] for v in row)
    assert result.metrics["dropout_fraction"] == pytest.approx(1 / tested)


def test_planted_background_spike_is_counted(tmp_path, synthetic):
    data, bvals, bvecs = synthetic
    bad = data.astype(np.float32)
    i, j = np.meshgrid(np.arange(data.shape[0]), np.arange(data.shape[1]), indexing="ij")
    grating = 3.0 * NOISE * np.cos(2 * np.pi * (5 * i + 3 * j) / data.shape[0])  # a k-space spike
    bad[:, :, 9, 5] = np.hypot(bad[:, :, 9, 5], grating)
    result = dwi_metrics(*write_dwi(tmp_path, "spike", bad, bvals, bvecs))
    assert result.metrics["spikes"] == 1
    assert [cell[:2] for cell in result.extras["spikes"]] == [[5, 9]]


def test_snr_of_constant_b0_with_known_noise(tmp_path, synthetic):
    data, bvals, bvecs = synthetic
    level, sigma = 800.0, 25.0
    head = phantom.tissue_fractions(phantom.HeadModel.from_seed(7), DWI_GRID).sum(axis=0) > 0.5
    rng = np.random.default_rng(5)
    series = data.astype(np.float32)
    for v in np.flatnonzero(bvals == 0):
        series[..., v] = np.hypot(level * head + sigma * rng.standard_normal(head.shape),
                                  sigma * rng.standard_normal(head.shape))
    result = dwi_metrics(*write_dwi(tmp_path, "constant", series, bvals, bvecs))
    assert result.metrics["sigma_b0"] == pytest.approx(sigma, rel=0.05)
    assert result.metrics["snr_b0"] == pytest.approx(level / sigma, rel=0.05)
    # Two b=0: std of two Gaussian samples is sigma |Z|, whose median is 0.6745 sigma.
    assert result.metrics["tsnr_b0"] == pytest.approx(level / sigma / 0.6745, rel=0.1)


def test_single_b0_noise_from_tensor_fit_and_from_air(tmp_path):
    bvals = np.array([0.0] + [1000.0] * 12)
    bvecs = np.vstack([np.zeros(3), phantom.gradient_directions(12)])
    data = phantom.dwi_series(DWI_GRID, 3, bvals, bvecs)
    result = dwi_metrics(*write_dwi(tmp_path, "one_b0", data, bvals, bvecs))
    assert result.extras["noise_method"] == "tensor_residual"
    assert result.metrics["sigma_b0"] == pytest.approx(NOISE, rel=0.15)
    assert {"tsnr_b0", "fd_mean", "fd_max"} <= set(result.extras["not_measured"])
    few = dwi_metrics(*write_dwi(tmp_path, "six_dirs", data[..., :7], bvals[:7], bvecs[:7]))
    assert few.extras["noise_method"] == "air_rayleigh"
    assert few.metrics["sigma_b0"] == pytest.approx(NOISE, rel=0.1)


def test_known_b0_motion_gives_fd(tmp_path):
    bvals = np.array([0.0, 1000, 1000, 1000, 0, 1000, 1000, 1000, 0, 1000, 1000, 1000, 0])
    bvecs = np.zeros((bvals.size, 3))
    bvecs[bvals > 0] = phantom.gradient_directions(9)
    data = phantom.dwi_series(DWI_GRID, 11, bvals, bvecs).astype(np.float32)
    motion = np.array([[0, 0, 0, 0, 0, 0], [0.8, 0, 0, 0, 0, 0.01],
                       [0.8, -0.6, 0.3, 0.012, 0, 0.01], [0.2, -0.6, 0.3, 0.012, -0.008, 0.0]])
    for n, v in enumerate(np.flatnonzero(bvals == 0)):
        data[..., v] = apply_rigid(data[..., v], motion[n], DWI_GRID.spacing)
    diff = np.abs(np.diff(motion, axis=0))
    truth = diff[:, :3].sum(axis=1) + 50.0 * diff[:, 3:].sum(axis=1)
    result = dwi_metrics(*write_dwi(tmp_path, "moved", data, bvals, bvecs))
    assert result.metrics["fd_mean"] == pytest.approx(truth.mean(), abs=0.1)
    assert result.metrics["fd_max"] == pytest.approx(truth.max(), abs=0.15)
    assert np.allclose(result.extras["fd"], truth, atol=0.2)


def test_picture_is_written(tmp_path, synthetic):
    data, bvals, bvecs = synthetic
    files = write_dwi(tmp_path, "pic", data, bvals, bvecs)
    result = dwi_metrics(*files)
    png = dwi_picture(files[0], result, tmp_path / "qc" / "pic.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["pic.png"]  # no temporary left behind


def test_gradient_table_must_match_volumes(tmp_path, synthetic):
    data, bvals, bvecs = synthetic
    with pytest.raises(ValueError, match="b-values"):
        dwi_metrics(*write_dwi(tmp_path, "short", data[..., :10], bvals, bvecs))


# ---- real data ------------------------------------------------------------------------------------

def _convert(series_dir: Path, out: Path, stem: str, expected: int) -> list[Path]:
    from datman_flow.dicom.convert import Dcm2niixMissing, convert_series, find_dcm2niix

    try:
        tool = find_dcm2niix()
    except Dcm2niixMissing as exc:
        pytest.skip(str(exc))
    outcome = convert_series(tool, series_dir, out, stem, expected_files=expected)
    assert outcome.status == "converted", outcome.message
    return [out / f"{stem}.nii.gz", out / f"{stem}.bval", out / f"{stem}.bvec"]


@pytest.fixture(scope="module")
def philips_dti(real_dicom, tmp_path_factory) -> list[Path]:
    root = real_dicom("philips_ingenia")
    series = tmp_path_factory.mktemp("philips_dti_dicom")
    for path in sorted((root / "In").glob("2201_*.dcm")):
        (series / path.name).symlink_to(path)
    return _convert(series, tmp_path_factory.mktemp("philips_dti_nifti"), "dti", 1394)


@pytest.fixture(scope="module")
def xa30_dwi(real_dicom, tmp_path_factory) -> list[Path]:
    root = real_dicom("siemens_xa30")
    return _convert(root / "In" / "10_DWI_dir80_PA", tmp_path_factory.mktemp("xa30_dwi_nifti"), "dwi", 21)


def degraded(files: list[Path], folder: Path, *, dropout: tuple[int, int] | None = None,
             noise: float = 0.0) -> list[Path]:
    """A copy of a real series with one slice of one volume at 30% or extra Rician noise."""
    img = nib.load(files[0])
    data = img.get_fdata(dtype=np.float32)
    if dropout is not None:
        data[:, :, dropout[1], dropout[0]] *= 0.3
    if noise:
        rng = np.random.default_rng(1)
        data = np.hypot(data + noise * rng.standard_normal(data.shape, dtype=np.float32),
                        noise * rng.standard_normal(data.shape, dtype=np.float32))
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    bvals = np.loadtxt(files[1])
    bvecs = np.loadtxt(files[2]).T
    return write_dwi(folder, "degraded", data, bvals, bvecs, affine=img.affine, header=header)


@pytest.mark.parametrize("name, bvalue, n_dirs", [("philips_dti", 1000, 16), ("xa30_dwi", 2500, 20)])
def test_real_dwi_values_are_sensible(request, tmp_path, name, bvalue, n_dirs):
    files = request.getfixturevalue(name)
    result = dwi_metrics(*files)
    m, x = result.metrics, result.extras
    bvals = np.loadtxt(files[1])
    assert x["bvalues"] == pytest.approx(bvals.tolist())
    assert (m["n_shells"], m["n_b0"], m["n_directions"]) == (1, 1, n_dirs)
    assert [s["bvalue"] for s in x["shells"]] == [bvalue]
    # b=0 SNR of 2-3 mm EPI at 3 T with a multichannel head coil: tens. Below 10 the series is
    # hardly usable; above 150 the noise estimate has failed (e.g. a zeroed or denoised air).
    assert 10.0 < m["snr_b0"] < 150.0
    assert 1.0 < m[f"tsnr_b{bvalue}"] < 30.0  # across directions: anisotropy, not only noise
    assert m["dropout_slices"] <= 2 and m["dropout_fraction"] < 0.005
    assert m.get("spikes", 0) == 0
    assert "fd_mean" not in m and "fd_mean" in x["not_measured"]  # one b=0: no motion estimate
    png = dwi_picture(files[0], result, tmp_path / f"{name}.png")
    assert png.stat().st_size > 10_000

    volume = int(np.flatnonzero(bvals > 50)[len(bvals) // 2])
    tested = np.flatnonzero(x["slices_tested"])
    k = int(tested[tested.size // 2])  # a slice in the middle of the brain
    worse = dwi_metrics(*degraded(files, tmp_path / "dropout", dropout=(volume, k)))
    assert [volume, k] in [cell[:2] for cell in worse.extras["dropouts"]]
    assert worse.metrics["dropout_slices"] >= 1
    noisy = dwi_metrics(*degraded(files, tmp_path / "noise", noise=2.0 * m["sigma_b0"]))
    assert noisy.metrics["snr_b0"] < 0.6 * m["snr_b0"]
    assert noisy.metrics[f"tsnr_b{bvalue}"] < m[f"tsnr_b{bvalue}"]
