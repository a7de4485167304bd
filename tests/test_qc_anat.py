"""Anatomical QC metrics (MRIQC's IQMs with numpy/scipy): against known truth on synthetic
heads and noise, and on the real Philips 3T MPRAGE of ../shared/dicom."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from peak_memory import PEAK_MB
from scipy import ndimage as ndi

from datman_flow.qc import common
from datman_flow.qc.anat import anat_analysis, anat_metrics
from datman_flow.qc.anat_picture import anat_picture
from datman_flow.qc.kinds import QC_KINDS, flag
from datman_flow.qc.settings import QcSettings
from datman_flow.samples import phantom, sessions

TISSUES = ("csf", "gm", "wm")
MRIQC22 = QcSettings(convention="mriqc22")
MEANS = {"csf": 220.0, "gm": 550.0, "wm": 850.0}  # phantom intensities below (x 1000 of T1W)


def head_phantom(sigma: float, *, spacing: float = 1.5, seed: int = 3, bias: bool = False):
    """The sample phantom's head with bright scalp fat, Rician noise of known sigma; also
    the true CSF/GM/WM fractions of the intracranial volume and the true bias field."""
    grid = phantom.Grid((int(192 / spacing), int(225 / spacing), int(150 / spacing)), (spacing,) * 3)
    model = phantom.HeadModel.from_seed(seed)
    frac = phantom.tissue_fractions(model, grid)
    contrast = np.array([1.6, 0.08, 0.22, 0.55, 0.85]) * 1000.0  # scalp, skull, CSF, GM, WM
    signal = np.tensordot(contrast, frac, axes=1)
    field = phantom.bias_field(model, grid) if bias else np.ones_like(signal)
    rng = np.random.default_rng(seed)
    image = np.hypot(signal * field + rng.normal(0, sigma, signal.shape), rng.normal(0, sigma, signal.shape))
    volumes = frac[2:].sum(axis=(1, 2, 3))
    img = nib.Nifti1Image(image.astype(np.float32), np.diag([spacing, spacing, spacing, 1.0]))
    return img, volumes / volumes.sum(), field


@pytest.fixture(scope="module")
def phantoms():
    """Analyses of the same head with noise sigma 10 and 20 (1.5 mm, so masks are eroded), under
    MRIQC 22.x's statistics (pure-tissue masks): the noise-truth checks below hold for those; MRIQC
    24's weighted statistics mix the tissues (tests/test_qc_convention.py compares the two)."""
    return {sigma: anat_analysis(head_phantom(sigma)[0], MRIQC22) for sigma in (10.0, 20.0)}


# --- the shared numpy measures -------------------------------------------------------------


def test_efc_of_a_constant_image_is_exactly_one():
    for value in (1.0, 0.1, 1234.5):
        assert common.efc(np.full((40, 50, 30), value, dtype=np.float32)) == 1.0
    frame = np.zeros((40, 50, 30), dtype=bool)
    frame[:5] = True
    image = np.full(frame.shape, 7.0)
    image[frame] = 0.0
    assert common.efc(image, frame) == 1.0


def test_efc_is_zero_with_all_energy_in_one_voxel_and_in_between_otherwise():
    image = np.zeros((20, 20, 20))
    image[3, 4, 5] = 10.0
    assert common.efc(image) == 0.0
    noise = np.abs(np.random.default_rng(0).normal(size=(20, 20, 20)))
    assert 0.5 < common.efc(noise) < 1.0


def test_fber_is_the_ratio_of_median_energies_and_minus_one_without_air():
    image = np.full((20, 20, 20), 2.0)
    head = np.zeros(image.shape, dtype=bool)
    head[5:15, 5:15, 5:15] = True
    image[head] = 10.0
    assert common.fber(image, head) == pytest.approx(100.0 / 4.0)
    rot = np.zeros(image.shape, dtype=bool)
    rot[:2] = True
    image[rot] = 1000.0  # rotation padding does not count as air
    assert common.fber(image, head, rot) == pytest.approx(25.0)
    image[~head] = 0.0
    assert common.fber(image, head) == -1.0


@pytest.mark.parametrize("fwhm_mm, zooms", [(4.0, (1.0, 1.0, 1.0)), (6.0, (1.0, 1.2, 1.5)), (8.0, (2.0, 2.0, 2.0))])
def test_fwhm_recovers_the_smoothness_of_gaussian_smoothed_noise(fwhm_mm, zooms):
    noise = np.random.default_rng(1).standard_normal((110, 110, 110)).astype(np.float32)
    sigma_vox = [fwhm_mm / common.SIGMA_TO_FWHM / z for z in zooms]
    smooth = ndi.gaussian_filter(noise, sigma_vox)
    mask = np.zeros(smooth.shape, dtype=bool)
    mask[10:-10, 10:-10, 10:-10] = True
    fx, fy, fz, avg = common.fwhm(smooth, mask, zooms)
    for value in (fx, fy, fz, avg):
        assert value == pytest.approx(fwhm_mm, rel=0.10)


def test_summary_stats_names_and_robust_spread():
    rng = np.random.default_rng(2)
    image = rng.normal(100.0, 5.0, (60, 60, 60))
    mask = np.zeros(image.shape, dtype=bool)
    mask[10:50, 10:50, 10:50] = True
    stats = common.summary_stats(image, {"wm": mask, "bg": np.zeros_like(mask)})
    assert set(stats) == {f"summary_{label}_{f}" for label in ("wm", "bg") for f in common.SUMMARY_FIELDS}
    assert stats["summary_wm_n"] == 40**3
    assert stats["summary_wm_median"] == pytest.approx(100.0, abs=0.1)
    assert stats["summary_wm_mad"] == pytest.approx(5.0, rel=0.02)  # scaled MAD = sigma
    assert stats["summary_wm_stdv"] == pytest.approx(5.0, rel=0.02)
    assert stats["summary_wm_k"] == pytest.approx(0.0, abs=0.05)  # Fisher kurtosis of a Gaussian
    assert stats["summary_wm_p95"] == pytest.approx(100.0 + 1.645 * 5.0, abs=0.2)
    assert stats["summary_bg_n"] == 0.0 and stats["summary_bg_mad"] == 0.0  # empty air: zeros, as MRIQC


def test_snr_helpers_follow_mriqc():
    assert common.snr(100.0, 10.0, 101) == pytest.approx(100.0 / (10.0 * np.sqrt(101 / 100)))
    assert common.snr_dietrich(100.0, 4.0) == pytest.approx(0.6551364 * 100.0 / 4.0, rel=1e-6)
    assert common.snr_dietrich(100.0, 0.5, sigma_air=2.0) == pytest.approx(0.6551364 * 50.0, rel=1e-6)
    assert common.snr_dietrich(100.0, 0.5) == -1.0


def test_head_mask_covers_the_head_and_not_the_air():
    img, _, _ = head_phantom(10.0, spacing=2.0)
    data = img.get_fdata(dtype=np.float32)
    head = common.head_mask(data, (2.0, 2.0, 2.0))
    model = phantom.HeadModel.from_seed(3)
    grid = phantom.Grid(data.shape, (2.0, 2.0, 2.0))
    truth = phantom.tissue_fractions(model, grid).sum(axis=0) > 0.5
    assert (head & truth).sum() / truth.sum() > 0.99
    near = ndi.binary_dilation(truth, iterations=2)  # the smoothed edge may reach 4 mm out
    assert (head & ~near).sum() < 0.001 * truth.sum()


# --- the anatomical metrics on synthetic heads with known answers ----------------------------


def test_phantom_snr_matches_the_added_noise(phantoms):
    for sigma, analysis in phantoms.items():
        m = analysis.result.metrics
        for tissue in ("gm", "wm"):
            assert m[f"snr_{tissue}"] == pytest.approx(MEANS[tissue] / sigma, rel=0.10)
        # CSF is looser: the phantom's subarachnoid CSF is a shell one or two voxels thick, and
        # the pure-CSF mask (pvm > 0.85, eroded, as MRIQC) keeps voxels beside the skull that are
        # partly bone; their spread grows with the noise (about 17 % low at sigma 10, 21 % at 20).
        assert m["snr_csf"] == pytest.approx(MEANS["csf"] / sigma, rel=0.30)
        assert m["snr_csf"] < MEANS["csf"] / sigma
        assert m["snr_total"] == pytest.approx(np.mean([m[f"snr_{t}"] for t in TISSUES]))


def test_phantom_snr_cnr_cjv_scale_with_the_noise(phantoms):
    low, high = phantoms[10.0].result.metrics, phantoms[20.0].result.metrics
    for key in ("snr_gm", "snr_wm", "snrd_gm", "snrd_wm", "cnr"):
        assert low[key] / high[key] == pytest.approx(2.0, rel=0.15), key
    assert high["cjv"] / low["cjv"] == pytest.approx(2.0, rel=0.15)
    # CJV of two Gaussians: (sigma + sigma) / (850 - 550)
    assert low["cjv"] == pytest.approx(2 * 10.0 / 300.0, rel=0.15)


def test_phantom_tissue_fractions_match_the_truth(phantoms):
    _, truth, _ = head_phantom(10.0)
    for analysis in phantoms.values():
        m = analysis.result.metrics
        assert sum(m[f"icvs_{t}"] for t in TISSUES) == pytest.approx(1.0)
        for k, tissue in enumerate(TISSUES):
            assert m[f"icvs_{tissue}"] == pytest.approx(truth[k], abs=0.02), tissue


def test_phantom_bias_field_is_recovered():
    img, _, field = head_phantom(10.0, spacing=2.0, seed=7, bias=True)
    analysis = anat_analysis(img)
    brain = analysis.segmentation.labels > 0
    truth = field[brain] / np.exp(np.log(field[brain]).mean())  # geometric mean 1, as estimated
    estimate = analysis.segmentation.bias[brain]
    p5, p95 = np.percentile(truth, [5, 95])
    assert analysis.result.metrics["inu_range"] == pytest.approx(p95 - p5, abs=0.02)
    assert np.abs(estimate - truth).max() < 0.04
    assert analysis.result.metrics["inu_med"] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("grid", [sessions.T1_GRID, sessions.SMALL_T1_GRID], ids=["2mm", "4mm"])
def test_demo_session_phantoms_give_sane_metrics(grid):
    volume = phantom.t1w_volume(grid, 5)
    result = anat_metrics(nib.Nifti1Image(volume, np.diag(list(grid.spacing) + [1.0])))
    m = result.metrics
    assert result.kind == "anat"
    assert all(np.isfinite(v) for v in m.values())
    assert sum(m[f"icvs_{t}"] for t in TISSUES) == pytest.approx(1.0)
    assert all(0.1 < m[f"icvs_{t}"] < 0.6 for t in TISSUES)
    if grid is sessions.T1_GRID:  # the demo's measured T1s (the 4 mm one is the refused label's, never measured)
        # inside MRIQC's usual ranges (what the picture and the qc_outliers check flag): a demo
        # session must not be flagged for being synthetic
        # (under the default mriqc24 convention SNR, CNR and CJV have no typical range: kinds.py)
        flagged = [name for name in QC_KINDS["anat"].key_metrics + ("qi_1",) if flag("anat", name, m[name], result.convention)]
        assert flagged == []
    assert m["cnr"] > 2.0 and m["qi_1"] < 0.01  # MRIQC 22's statistics: > 3 (2 mm 3.3, 4 mm 3.9; mriqc24 2.8, 2.6)
    assert (m["size_x"], m["spacing_z"]) == (float(grid.shape[0]), grid.spacing[2])
    json.dumps(result.extras)


def test_an_implausible_brain_is_refused_with_a_reason():
    # a 2 cm "head" with a 1.2 cm "brain": far below any human brain volume
    grid = np.indices((60, 60, 60)).astype(np.float32) - 30.0
    r = np.sqrt((grid**2).sum(axis=0))
    image = np.where(r < 10, 900.0, np.where(r < 12, 50.0, np.where(r < 15, 1200.0, 0.0)))
    image += np.abs(np.random.default_rng(0).normal(0, 10, image.shape))
    with pytest.raises(ValueError, match="brain"):
        anat_metrics(nib.Nifti1Image(image.astype(np.float32), np.eye(4)))


def test_metrics_do_not_depend_on_the_stored_orientation():
    img, _, _ = head_phantom(20.0, spacing=2.0)
    data = np.asarray(img.dataobj)
    # the same head stored LPS-flipped with the axes permuted (as a sagittal acquisition)
    stored = np.flip(np.flip(data, 0), 1).transpose(2, 0, 1)
    affine = np.zeros((4, 4))
    affine[0, 1], affine[1, 2], affine[2, 0], affine[3, 3] = -2.0, -2.0, 2.0, 1.0
    affine[:3, 3] = [2.0 * (data.shape[0] - 1), 2.0 * (data.shape[1] - 1), 0.0]
    again = nib.Nifti1Image(np.ascontiguousarray(stored), affine)
    assert np.array_equal(nib.as_closest_canonical(again).get_fdata(), nib.as_closest_canonical(img).get_fdata())
    first, second = anat_metrics(img).metrics, anat_metrics(again).metrics
    for key in ("snr_total", "cnr", "cjv", "efc", "wm2max", "icvs_gm", "fwhm_avg"):
        assert second[key] == pytest.approx(first[key], rel=1e-6), key


def test_picture_is_written_atomically(tmp_path):
    img, _, _ = head_phantom(20.0, spacing=2.0)
    analysis = anat_analysis(img)
    out = tmp_path / "qc" / "t1.png"
    assert anat_picture(img, analysis.segmentation.brain, out, analysis.result.metrics) == out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert anat_picture(img, None, out, analysis.result.metrics) == out  # computes its own mask
    assert [p.name for p in out.parent.iterdir()] == ["t1.png"]


# --- the real Philips MPRAGE ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mprage(philips_mprage) -> Path:
    return philips_mprage


@pytest.fixture(scope="module")
def mprage_metrics(mprage) -> dict[str, float]:
    return anat_metrics(mprage).metrics


def test_mprage_metrics_fall_in_mriqc_typical_3t_ranges(mprage_metrics):
    m = mprage_metrics
    print("\nMPRAGE:", json.dumps({k: round(v, 4) for k, v in sorted(m.items()) if not k.startswith("summary")}))
    assert 0.25 <= m["cjv"] <= 0.65
    assert 1.5 <= m["cnr"] <= 5.0
    assert 0.4 <= m["efc"] <= 0.7
    assert 0.5 <= m["wm2max"] <= 0.85
    assert sum(m[f"icvs_{t}"] for t in TISSUES) == pytest.approx(1.0)
    for tissue in TISSUES:
        assert 0.1 <= m[f"icvs_{tissue}"] <= 0.6, tissue
    assert m["snr_wm"] > m["snr_gm"] > m["snr_csf"] > 1.0
    assert 2.0 < m["fwhm_avg"] < 6.0 and m["qi_1"] < 0.01
    assert (m["size_x"], m["size_y"], m["size_z"]) == (170.0, 256.0, 256.0)
    assert m["spacing_x"] == pytest.approx(1.0, abs=0.01)


def test_mprage_with_extra_noise_scores_worse(mprage, mprage_metrics):
    img = nib.as_closest_canonical(nib.load(str(mprage)))
    data = img.get_fdata(dtype=np.float32)
    wm_level = float(np.percentile(data[data > 0], 90))
    noisy = data + np.random.default_rng(3).normal(0.0, 0.08 * wm_level, data.shape).astype(np.float32)
    degraded = anat_metrics(nib.Nifti1Image(np.clip(noisy, 0, None), img.affine, img.header)).metrics
    for key in ("snr_csf", "snr_gm", "snr_wm", "snr_total", "cnr"):
        assert degraded[key] < mprage_metrics[key], key
    assert degraded["cjv"] > mprage_metrics["cjv"]


def test_mprage_time_and_peak_memory(mprage):
    """Measured in a fresh interpreter (peak RSS of that process alone); reported, and the
    memory bound of the brief (2 GB) asserted. Timing is reported, never asserted."""
    script = (
        "import json, sys, time\n"
        "from datman_flow.qc.anat import anat_metrics\n"
        "t = time.perf_counter(); anat_metrics(sys.argv[1]); s = time.perf_counter() - t\n"
        f"print(json.dumps({{'seconds': s, 'peak_mb': {PEAK_MB}}}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(mprage)], capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nMPRAGE 256x256x170 anatomical metrics: {figures['seconds']:.1f} s, peak RSS {figures['peak_mb']:.0f} MB")
    assert figures["peak_mb"] < 2048


# --- the Siemens XA30 T1w pair: 2 mm, 64-channel coil, with and without prescan normalise ---


@pytest.fixture(scope="module")
def xa30_t1w(real_dicom, tmp_path_factory) -> dict[int, dict[str, float]]:
    """Series 5 (raw coil sensitivity: a dark centre, a bright scalp) and series 6 (the same
    acquisition, prescan-normalised) of the XA30 study, with their brain volumes."""
    from datman_flow.dicom.convert import convert_series, find_dcm2niix

    root, tool, out = real_dicom("siemens_xa30"), find_dcm2niix(), {}
    for number in (5, 6):
        series = root / "In" / f"{number}_anat-T1w_acq-tfl"
        outcome = convert_series(tool, series, tmp_path_factory.mktemp(f"xa30_t1_{number}"), "t1", expected_files=1)
        assert outcome.status == "converted", outcome.message
        analysis = anat_analysis(outcome.nifti_path, MRIQC22)  # the figures below are MRIQC 22.x's
        out[number] = analysis.result.metrics | {"brain_ml": analysis.result.extras["brain_ml"]}
    return out


def test_xa30_t1w_brain_and_metrics_despite_coil_shading(xa30_t1w):
    for number, m in xa30_t1w.items():
        print(f"\nXA30 T1w series {number}:", json.dumps({k: round(v, 3) for k, v in sorted(m.items())
                                                         if not k.startswith("summary")}))
        assert 1000.0 < m["brain_ml"] < 2000.0, number  # an adult brain with its CSF, not the scalp
        assert sum(m[f"icvs_{t}"] for t in TISSUES) == pytest.approx(1.0)
        assert m["snr_wm"] > m["snr_csf"] > 1.0
        assert 1.5 <= m["cnr"] <= 5.0, number
        assert 0.4 <= m["efc"] <= 0.7, number
        # MRIQC's 0.25-0.65 is for 1 mm T1w; with 2 mm voxels most cortex is partial volume,
        # which widens GM's spread (series 5: 0.53, series 6: 0.50; 0.66 and 0.59 with the
        # partial-volume maps used before the Atropos-like classes).
        assert 0.25 <= m["cjv"] <= 0.7, number
    # The shading the 64-channel coil leaves without prescan normalise is what inu_range sees.
    assert xa30_t1w[5]["inu_range"] > 1.5 * xa30_t1w[6]["inu_range"]
