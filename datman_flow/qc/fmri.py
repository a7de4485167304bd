"""MRIQC's functional (BOLD) image-quality metrics from a 4D NIfTI, numpy/scipy/nibabel only.

Pipeline (MRIQC's ``fmri_qc_workflow`` without AFNI/FSL/ANTs): orient to RAS, count the
non-steady-state volumes at the start (``dummy_trs``, nipype's ``NonSteadyStateDetector``) and
drop them, realign every volume to the first kept one (:mod:`datman_flow.qc.realign`, in place
of AFNI ``3dvolreg``), average the realigned series into the mean EPI, derive a head mask and an
AFNI ``3dAutomask``-like brain mask from it (:mod:`datman_flow.qc.epi_mask`), then compute the
metrics. ``docs/metrics_fmri.md`` gives every formula and each deviation from MRIQC.
:func:`fmri_analysis` also returns the maps the picture draws (:mod:`datman_flow.qc.fmri_picture`),
so the series is realigned and resampled once for both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi
from scipy import stats

from datman_flow.qc import common, weighted_stats
from datman_flow.qc.epi_mask import brain_mask
from datman_flow.qc.realign import framewise_displacement, realign, reslice, resliced_moments
from datman_flow.qc.result import QCResult
from datman_flow.qc.settings import DEFAULT_QC, QcSettings

FD_THRESHOLD = 0.2  # mm, MRIQC's fd_thres
FD_RADIUS = 50.0  # mm, Power et al. 2012
MIN_VOLUMES = 5  # AFNI 3dToutcount refuses fewer; MRIQC's min_len_bold is larger
DUMMY_WINDOW = 50  # NonSteadyStateDetector looks at the first 50 volumes
DVARS_SCALE = 1000.0  # nipype ComputeDVARS' intensity_normalization
VARIANCE_TOL = 1e-7  # nipype ComputeDVARS' variance_tol


def load_bold(nifti) -> tuple[np.ndarray, tuple[float, float, float], float]:
    """Data (float32, RAS-oriented), voxel size (mm) and TR (s) of a 4D NIfTI path or image."""
    img = nib.load(str(nifti)) if isinstance(nifti, (str, Path)) else nifti
    img = nib.as_closest_canonical(img)
    if len(img.shape) != 4:
        raise ValueError(f"not a 4D series: shape {img.shape}")
    data = img.get_fdata(dtype=np.float32, caching="unchanged")
    if isinstance(img.dataobj, np.ndarray):  # an in-memory image: never modify the caller's array
        data = data.copy()
    if not np.issubdtype(img.get_data_dtype(), np.integer):
        np.nan_to_num(data, copy=False)
    zooms = img.header.get_zooms()
    return data, tuple(float(z) for z in zooms[:3]), float(zooms[3]) if len(zooms) > 3 else 0.0


def count_dummies(global_signal: np.ndarray, thresh: float = 3.5) -> int:
    """Leading volumes whose modified z-score (0.6745 |x - median| / MAD) exceeds ``thresh``
    (niworkflows/nipype ``is_outlier``)."""
    points = np.asarray(global_signal, dtype=np.float64)
    dev = np.abs(points - np.median(points))
    mad = np.median(dev)
    if mad <= 0:
        return 0
    z = 0.6745 * dev / mad
    above = z > thresh
    return int(np.argmin(above)) if not above.all() else len(points)


def gsr(mean_epi: np.ndarray, mask: np.ndarray, axis: int) -> float:
    """Ghost-to-signal ratio along ``axis``: the mask shifted by N/2 (minus the mask) is the
    ghost, the rest of the image outside the mask the background (MRIQC ``qc.functional.gsr``)."""
    ghost = np.roll(mask, mask.shape[axis] // 2, axis=axis) & ~mask
    background = ~ghost & ~mask
    if not ghost.any() or not background.any() or not mask.any():
        return float("nan")
    signal = float(np.median(mean_epi[mask]))
    return float((mean_epi[ghost].mean() - mean_epi[background].mean()) / signal)


def tsnr_map(series: np.ndarray) -> np.ndarray:
    """Temporal mean over temporal standard deviation (0 where the std is below 1e-3), nipype TSNR."""
    mean = series.mean(axis=-1)
    std = series.std(axis=-1)
    out = np.zeros_like(mean)
    ok = std > 1e-3
    out[ok] = mean[ok] / std[ok]
    return out


def dvars(series: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nipype ``compute_dvars`` on (voxels, t): standardised, plain and voxel-wise standardised
    DVARS (``t - 1`` values each)."""
    x = series.astype(np.float64)
    x = x / np.median(x) * DVARS_SCALE
    q75, q25 = np.percentile(x, [75, 25], axis=1, method="lower")
    sd = (q75 - q25) / 1.349  # robust standard deviation of each voxel
    keep = sd > VARIANCE_TOL
    x, sd = x[keep], sd[keep]
    centred = x - x.mean(axis=1, keepdims=True)
    ar1 = (centred[:, :-1] * centred[:, 1:]).sum(axis=1) / np.maximum((centred**2).sum(axis=1), 1e-30)
    diff_sd = np.sqrt(2.0 * (1.0 - ar1)) * sd  # expected std of the temporal difference (AR(1))
    diff = np.diff(x, axis=1)
    nstd = np.sqrt(np.mean(diff**2, axis=0))
    std = nstd / diff_sd.mean()
    vstd = np.sqrt(np.mean((diff / diff_sd[:, None]) ** 2, axis=0))
    return std, nstd, vstd


def gcor(series: np.ndarray) -> float:
    """Global correlation: squared norm of the average of the demeaned, unit-length time series
    (AFNI ``@compute_gcor``; equals the mean of the full correlation matrix)."""
    x = series.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1)
    x = x[norm > 0] / norm[norm > 0, None]
    g = x.mean(axis=0)
    return float(g @ g)


def outlier_fraction(series: np.ndarray, qthr: float = 0.001) -> np.ndarray:
    """AFNI ``3dToutcount -fraction`` (polort 0): per volume, the fraction of voxels farther from
    their median than ``qginv(qthr / N) * sqrt(pi / 2) * MAD``."""
    n = series.shape[1]
    resid = series - np.median(series, axis=1, keepdims=True)
    mad = np.median(np.abs(resid), axis=1, keepdims=True)
    alpha = stats.norm.isf(qthr / n) * np.sqrt(np.pi / 2.0)
    out = (np.abs(resid) > alpha * mad) & (mad > 0)
    return out.sum(axis=0) / max(series.shape[0], 1)


def quality_index(series: np.ndarray) -> np.ndarray:
    """AFNI ``3dTqual``: per volume, 1 - Spearman correlation with the median volume."""
    med = stats.rankdata(np.median(series, axis=1))
    med = med - med.mean()
    ranks = stats.rankdata(series, axis=0)
    ranks = ranks - ranks.mean(axis=0, keepdims=True)
    denom = np.sqrt((med @ med) * (ranks**2).sum(axis=0))
    corr = np.divide(med @ ranks, denom, out=np.zeros(series.shape[1]), where=denom > 0)
    return 1.0 - corr


@dataclass(frozen=True, eq=False)
class FmriAnalysis:
    """The metrics of one BOLD series and what its picture needs, nothing 4-D: the mean and
    temporal std of the realigned series (trilinear, x-y-z), the brain mask, and the realigned
    series at the brain voxels (cubic, ``(voxels, t)`` in ``np.nonzero(brain)`` order), i.e.
    the series every temporal metric was computed from."""

    result: QCResult
    zooms: tuple[float, float, float]
    mean_epi: np.ndarray
    std_epi: np.ndarray
    brain: np.ndarray
    series: np.ndarray


def _realigned(data: np.ndarray, params: np.ndarray, zooms):
    """Mean and std maps, head and brain masks, and the brain series of ``data`` (dummies
    dropped, negatives zeroed) with the motion ``params`` undone."""
    if params.shape != (data.shape[3], 6):
        raise ValueError(f"motion parameters of shape {params.shape} for {data.shape[3]} volumes")
    mean_epi, std_epi = resliced_moments(data, params, zooms, order=1)
    head = common.head_mask(mean_epi, zooms)
    brain = brain_mask(mean_epi, head)
    if brain.sum() < 100:
        raise ValueError(f"brain mask of {int(brain.sum())} voxels: cannot measure this series")
    series = np.clip(reslice(data, params, zooms, order=3, mask=brain), 0.0, None)
    return mean_epi, std_epi, head, brain, series


def summary_statistics(mean_epi: np.ndarray, brain: np.ndarray, convention: str) -> dict[str, float]:
    """``summary_{fg,bg}_*`` of the mean EPI in the brain mask and its complement: MRIQC 24
    weights the statistics by the two binary masks (weighted_stats.py); 22.x's ``FunctionalQC``
    called ``summary_stats(..., erode=True)``: both masks eroded (18-connectivity) first."""
    if convention == "mriqc24":
        return weighted_stats.summary_stats(mean_epi, {"fg": brain, "bg": ~brain})
    structure = ndi.generate_binary_structure(3, 2)
    masks = {"fg": ndi.binary_erosion(brain, structure), "bg": ndi.binary_erosion(~brain, structure)}
    return common.summary_stats(mean_epi, masks)


def fmri_analysis(nifti, settings: QcSettings = DEFAULT_QC) -> FmriAnalysis:
    """All of MRIQC's BOLD metrics for one 4D NIfTI (path or nibabel image), with the maps
    and brain series the picture reuses. The 4D series itself is not kept. The MRIQC
    ``settings.convention`` changes only ``summary_*``, ``snr``, ``efc`` and ``fber``
    (docs/metrics_fmri.md); every temporal metric is the same under both."""
    start = time.perf_counter()
    data, zooms, tr = load_bold(nifti)
    global_signal = data.reshape(-1, data.shape[3]).mean(axis=0)
    dummies = count_dummies(global_signal[:DUMMY_WINDOW])
    if data.shape[3] - dummies < MIN_VOLUMES:
        dummies = max(0, data.shape[3] - MIN_VOLUMES)
    if data.shape[3] - dummies < MIN_VOLUMES:
        raise ValueError(f"{data.shape[3]} volumes: at least {MIN_VOLUMES} are needed for BOLD metrics")
    data = data[..., dummies:]
    np.clip(data, 0.0, None, out=data)  # MRIQC zeroes negative intensities

    params = realign(data, zooms, reference=0)
    mean_epi, std_epi, head, brain, series = _realigned(data, params, zooms)

    fd = framewise_displacement(params, FD_RADIUS)
    fd_num = int((fd > FD_THRESHOLD).sum())
    dv_std, dv_nstd, dv_vstd = dvars(series)
    aor = outlier_fraction(series)
    aqi = quality_index(series)
    fwhm = common.fwhm(mean_epi, brain, zooms)
    fwhm_vox = [v / z if v > 0 else -1.0 for v, z in zip(fwhm[:3], zooms)]
    valid = [v for v in fwhm_vox if v > 0]
    summary = summary_statistics(mean_epi, brain, settings.convention)
    metrics = {
        "dummy_trs": float(dummies),
        "fd_mean": float(fd.mean()) if fd.size else 0.0,
        "fd_num": float(fd_num),
        "fd_perc": float(fd_num * 100.0 / (fd.size + 1)),
        "tsnr": float(np.median(tsnr_map(series))),
        "dvars_std": float(dv_std.mean()),
        "dvars_nstd": float(dv_nstd.mean()),
        "dvars_vstd": float(dv_vstd.mean()),
        "gsr_x": gsr(mean_epi, brain, 0),
        "gsr_y": gsr(mean_epi, brain, 1),
        "aor": float(aor.mean()),
        "aqi": float(aqi.mean()),
        "gcor": gcor(series),
        "efc": common.as_reported(common.efc(mean_epi), settings.convention),
        "fber": common.as_reported(common.fber(mean_epi, brain), settings.convention),
        "fwhm_x": fwhm_vox[0],
        "fwhm_y": fwhm_vox[1],
        "fwhm_z": fwhm_vox[2],
        "fwhm_avg": float(np.mean(valid)) if valid else -1.0,
        "snr": common.snr(summary["summary_fg_median"], summary["summary_fg_stdv"], summary["summary_fg_n"]),
        **summary,
        "size_x": float(data.shape[0]), "size_y": float(data.shape[1]), "size_z": float(data.shape[2]),
        "size_t": float(data.shape[3]),
        "spacing_x": zooms[0], "spacing_y": zooms[1], "spacing_z": zooms[2], "spacing_tr": tr,
    }
    extras = {
        "motion_params": np.round(params, 6).tolist(),
        "motion_columns": ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"],
        "fd": np.round(fd, 5).tolist(),
        "dvars_std": np.round(dv_std, 5).tolist(),
        "dvars_nstd": np.round(dv_nstd, 4).tolist(),
        "outlier_fraction": np.round(aor, 5).tolist(),
        "quality_index": np.round(aqi, 6).tolist(),
        "global_signal": np.round(global_signal, 4).tolist(),
        "dummy_trs": int(dummies),
        "brain_mask_voxels": int(brain.sum()),
        "brain_mask_ml": float(brain.sum() * np.prod(zooms) / 1000.0),
        "head_mask_voxels": int(head.sum()),
    }
    result = QCResult(kind="fmri", metrics=metrics, extras=extras, seconds=time.perf_counter() - start,
                      convention=settings.convention)
    return FmriAnalysis(result, zooms, mean_epi, std_epi, brain, series)


def fmri_metrics(nifti, settings: QcSettings = DEFAULT_QC) -> QCResult:
    """All of MRIQC's BOLD metrics for one 4D NIfTI (path or nibabel image)."""
    return fmri_analysis(nifti, settings).result


def reanalyse(nifti, result: QCResult) -> FmriAnalysis:
    """The picture's inputs for a series measured earlier: ``result`` (from :func:`fmri_metrics`)
    gives the dummy count and the motion parameters, so only the resampling is redone."""
    data, zooms, _ = load_bold(nifti)
    data = data[..., int(result.extras.get("dummy_trs", 0)):]
    np.clip(data, 0.0, None, out=data)
    params = np.asarray(result.extras.get("motion_params", []), dtype=float)
    mean_epi, std_epi, _, brain, series = _realigned(data, params, zooms)
    return FmriAnalysis(result, zooms, mean_epi, std_epi, brain, series)
