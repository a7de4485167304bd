"""Diffusion (DWI) image-quality metrics from a dcm2niix NIfTI + .bval + .bvec, numpy/scipy only.

Shells from the b-values, the b=0 signal-to-noise ratio, per-shell tSNR, slice dropouts by a
SOLID-style robust test, background spikes, head motion of the b=0 volumes (framewise
displacement), EFC, FBER and summary statistics of the mean b=0. Slices are taken along the
third voxel axis, as dcm2niix stores 2D acquisitions; the slice-wise tests (dropouts, spikes) are
in :mod:`datman_flow.qc.dwi_slices`. ``docs/metrics_dwi.md`` gives every formula, threshold and
deviation from MRIQC's diffusion IQMs.
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
from datman_flow.qc.dwi_slices import Dropouts, Spikes, background_spikes, slice_dropouts
from datman_flow.qc.epi_mask import brain_mask
from datman_flow.qc.realign import framewise_displacement, realign
from datman_flow.qc.result import QCResult

B0_THRESHOLD = 50.0  # s/mm^2: b <= this is a b=0 volume (MRIQC's b0_threshold)
SHELL_GAP = 100.0  # s/mm^2: sorted b-values further apart than this start a new shell
DIRECTION_COS = float(np.cos(np.radians(1.0)))  # directions within 1 degree (or antipodal) are one
TENSOR_MAX_B = 1500.0  # shells used for the tensor-fit noise estimate (kurtosis is small below)
FD_RADIUS = 50.0  # mm, Power et al. 2012


def read_gradients(bval: Path, bvec: Path, n_volumes: int) -> tuple[np.ndarray, np.ndarray]:
    """b-values (n,) and gradient directions (n, 3) from FSL-format files (dcm2niix)."""
    bvals = np.atleast_1d(np.loadtxt(bval, dtype=np.float64)).ravel()
    bvecs = np.atleast_1d(np.loadtxt(bvec, dtype=np.float64))
    bvecs = bvecs.reshape(3, -1).T if bvecs.size == 3 * bvals.size else bvecs
    if bvals.size != n_volumes or bvecs.shape != (n_volumes, 3):
        raise ValueError(f"{n_volumes} volumes but {bvals.size} b-values and {bvecs.size} b-vector values")
    return bvals, bvecs


def shell_labels(bvals: np.ndarray) -> np.ndarray:
    """Per volume: 0 for b=0, else the shell's b-value (median of its cluster rounded to 100,
    as MRIQC's ``NumberOfShells`` rounds). Clusters: sorted b-values split at gaps > 100."""
    labels = np.zeros(bvals.size, dtype=int)
    high = np.flatnonzero(bvals > B0_THRESHOLD)
    if high.size == 0:
        return labels
    order = high[np.argsort(bvals[high])]
    breaks = np.flatnonzero(np.diff(bvals[order]) > SHELL_GAP) + 1
    for cluster in np.split(order, breaks):
        labels[cluster] = max(int(np.round(np.median(bvals[cluster]), -2)), 100)
    return labels


def count_directions(bvecs: np.ndarray) -> int:
    """Distinct unit directions (g and -g are one direction; zero vectors are ignored)."""
    norms = np.linalg.norm(bvecs, axis=1)
    units = bvecs[norms > 1e-3] / norms[norms > 1e-3, None]
    kept: list[np.ndarray] = []
    for g in units:
        if not kept or np.max(np.abs(np.asarray(kept) @ g)) < DIRECTION_COS:
            kept.append(g)
    return len(kept)


def _chi2_median_ratio(dof: int) -> float:
    """Median of chi2(dof) / dof: a robust (median) variance estimate is divided by this."""
    return float(stats.chi2.ppf(0.5, dof) / dof)


def noise_sigma(data, bvals, bvecs, labels, core, head) -> tuple[float, str]:
    """Thermal noise sigma and the method: variance across the b=0 volumes (MRIQC ``noise_b0``,
    >= 2 b=0), else residuals of a log-linear tensor fit (>= 10 volumes), else the air
    (Rayleigh median). ``nan`` and 'none' when none applies."""
    b0 = np.flatnonzero(labels == 0)
    if b0.size >= 2:
        var = data[core][:, b0].astype(np.float64).var(axis=1, ddof=1)
        return float(np.sqrt(np.median(var) / _chi2_median_ratio(b0.size - 1))), "b0_variance"
    use = np.flatnonzero(bvals <= TENSOR_MAX_B)
    use = use if use.size >= 10 and np.any(labels[use] > 0) else np.arange(bvals.size)
    b, g = bvals[use], bvecs[use] / np.maximum(np.linalg.norm(bvecs[use], axis=1), 1e-9)[:, None]
    design = np.column_stack([np.ones(b.size), *(-b * g[:, i] * g[:, j] * (1 if i == j else 2)
                                                  for i, j in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)))])
    if use.size >= 10 and np.linalg.matrix_rank(design) == 7:
        signal = data[core][:, use].astype(np.float64)
        floor = 1e-3 * max(float(np.median(signal)), 1e-6)
        beta = np.linalg.lstsq(design, np.log(np.maximum(signal, floor)).T, rcond=None)[0]
        rss = ((signal - np.exp(design @ beta).T) ** 2).sum(axis=1) / (use.size - 7)
        return float(np.sqrt(np.median(rss) / _chi2_median_ratio(use.size - 7))), "tensor_residual"
    air = ~ndi.binary_dilation(head, iterations=3)
    values = data[..., b0[0] if b0.size else 0][air]
    if values.size >= 1000 and np.mean(values > 0) >= 0.5:
        return float(np.median(values) / np.sqrt(2.0 * np.log(2.0))), "air_rayleigh"
    return float("nan"), "none"


def load_dwi(nifti) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Data (float32, as stored, NaN and negatives set to 0) and voxel size of a 4D NIfTI path or image."""
    img = nib.load(str(nifti)) if isinstance(nifti, (str, Path)) else nifti
    if len(img.shape) != 4:
        raise ValueError(f"not a 4D diffusion series: shape {img.shape}")
    data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    data = np.clip(np.nan_to_num(data), 0.0, None)  # MRIQC zeroes negative intensities
    return data, tuple(float(z) for z in img.header.get_zooms()[:3])


@dataclass(frozen=True, eq=False)
class DwiSeries:
    """One loaded diffusion series: the data (x, y, z, volumes) and voxel size, the gradient
    table, each volume's shell label (0: b=0), the volumes of each shell (b=0 first), the
    reference volumes (the b=0, else the lowest shell), their mean and the masks drawn on it."""

    data: np.ndarray
    zooms: tuple[float, float, float]
    bvals: np.ndarray
    bvecs: np.ndarray
    labels: np.ndarray
    shells: tuple[int, ...]
    groups: dict[int, np.ndarray]
    reference: np.ndarray
    mean_b0: np.ndarray
    head: np.ndarray
    brain: np.ndarray
    core: np.ndarray  # the brain eroded by 2 voxels, for noise estimates away from edges

    @property
    def b0(self) -> np.ndarray:
        return self.groups[0]


def load_series(nifti: Path, bval: Path, bvec: Path) -> DwiSeries:
    """Data, gradients, shells and masks of one series; ValueError when it cannot be measured."""
    data, zooms = load_dwi(nifti)
    bvals, bvecs = read_gradients(bval, bvec, data.shape[3])
    labels = shell_labels(bvals)
    shells = tuple(sorted(set(labels[labels > 0].tolist())))
    b0 = np.flatnonzero(labels == 0)
    reference = b0 if b0.size else np.flatnonzero(labels == min(shells))
    mean_b0 = data[..., reference].mean(axis=3)
    head = common.head_mask(mean_b0, zooms)
    brain = brain_mask(mean_b0, head)
    brain = brain if brain.sum() >= 100 else head
    if brain.sum() < 100:
        raise ValueError(f"brain mask of {int(brain.sum())} voxels: cannot measure this series")
    core = ndi.binary_erosion(brain, iterations=2)
    core = core if core.sum() >= 100 else brain
    groups = {0: b0, **{s: np.flatnonzero(labels == s) for s in shells}}
    return DwiSeries(data, zooms, bvals, bvecs, labels, shells, groups, reference, mean_b0, head, brain, core)


def _snr(s: DwiSeries) -> tuple[dict[str, float], dict[str, str], str]:
    """``snr_b0`` and ``sigma_b0`` (or why not), and the noise method."""
    sigma, method = noise_sigma(s.data, s.bvals, s.bvecs, s.labels, s.core, s.head)
    if s.b0.size and np.isfinite(sigma) and sigma > 0:
        return {"snr_b0": float(s.mean_b0[s.brain].mean() / sigma), "sigma_b0": sigma}, {}, method
    why = "no b=0 volume" if not s.b0.size else "no noise estimate (1 b=0, <10 volumes, no air)"
    return {}, {"snr_b0": why}, method


def _shell_tsnr(s: DwiSeries) -> tuple[dict[str, float], dict[str, str]]:
    """``tsnr_b{shell}`` of every shell with >= 2 volumes (b=0 included), or why not."""
    metrics: dict[str, float] = {}
    skipped: dict[str, str] = {}
    inside = s.data[s.brain]
    for label, idx in s.groups.items():
        if idx.size >= 2:
            block = inside[:, idx]
            std = block.std(axis=1, ddof=1)
            ratio = np.divide(block.mean(axis=1), std, out=np.zeros(std.shape), where=std > 1e-3)
            metrics[f"tsnr_b{label}"] = float(np.median(ratio))
        else:
            skipped[f"tsnr_b{label}"] = f"{idx.size} volume(s)"
    return metrics, skipped


def _b0_motion(s: DwiSeries) -> tuple[np.ndarray, np.ndarray, dict[str, float], dict[str, str]]:
    """Motion parameters and FD of the b=0 volumes, ``fd_mean`` and ``fd_max`` (or why not)."""
    if s.b0.size < 2:
        why = f"{s.b0.size} b=0 volume(s): motion needs two"
        return np.zeros((0, 6)), np.zeros(0), {}, {"fd_mean": why, "fd_max": why}
    params = realign(s.data[..., s.b0], s.zooms, reference=0)
    fd = framewise_displacement(params, FD_RADIUS)
    return params, fd, {"fd_mean": float(fd.mean()), "fd_max": float(fd.max())}, {}


def _image_metrics(s: DwiSeries) -> dict[str, float]:
    """EFC, FBER and summary statistics of the mean b=0, and the geometry. MRIQC 22.x had no
    diffusion metrics: these follow 24.0.2 under either convention (statistics weighted by the
    masks, efc and fber to 4 decimals)."""
    metrics = {"efc": common.as_reported(common.efc(s.mean_b0), "mriqc24"),
               "fber": common.as_reported(common.fber(s.mean_b0, s.head), "mriqc24")}
    metrics.update(weighted_stats.summary_stats(s.mean_b0, {"fg": s.brain, "bg": ~s.brain}))
    metrics.update({f"size_{a}": float(n) for a, n in zip("xyzt", s.data.shape)})
    metrics.update({f"spacing_{a}": z for a, z in zip("xyz", s.zooms)})
    return metrics


def _extras(s: DwiSeries, method: str, dropouts: Dropouts, spikes: Spikes, params: np.ndarray, fd: np.ndarray,
            skipped: dict[str, str]) -> dict[str, object]:
    labels, bvecs = s.labels, s.bvecs
    return {
        "bvalues": [round(float(b), 1) for b in s.bvals],
        "shell_of_volume": labels.tolist(),
        "shells": [{"bvalue": int(b), "n_volumes": int((labels == b).sum()),
                    "n_directions": count_directions(bvecs[labels == b]),
                    "volumes": np.flatnonzero(labels == b).tolist()} for b in s.shells],
        "n_directions_per_shell": {str(b): count_directions(bvecs[labels == b]) for b in s.shells},
        "b0_volumes": s.b0.tolist(),
        "noise_method": method,
        **dropouts.extras(),
        **spikes.extras(),
        "motion_params": np.round(params, 6).tolist(),
        "motion_columns": ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"],
        "fd": np.round(fd, 5).tolist(),
        "brain_mask_voxels": int(s.brain.sum()),
        "head_mask_voxels": int(s.head.sum()),
        "not_measured": skipped,
    }


def dwi_metrics(nifti: Path, bval: Path, bvec: Path) -> QCResult:
    """Diffusion QC metrics of one series (see the module docstring)."""
    start = time.perf_counter()
    s = load_series(nifti, bval, bvec)
    metrics: dict[str, float] = {"n_volumes": float(s.data.shape[3]), "n_b0": float(s.b0.size),
                                 "n_shells": float(len(s.shells)),
                                 "n_directions": float(count_directions(s.bvecs[s.labels > 0]))}
    snr, skipped, method = _snr(s)
    tsnr, why = _shell_tsnr(s)
    metrics |= snr | tsnr
    skipped |= why
    dropouts = slice_dropouts(s.data, s.brain, list(s.groups.values()))
    spikes = background_spikes(s.data, s.head, list(s.groups.values()), int(s.reference[0]))
    metrics |= dropouts.metrics()
    if spikes.measured:
        metrics["spikes"] = float(spikes.hits.sum())
    else:
        skipped["spikes"] = "no usable background (zeroed or too small)"
    params, fd, motion, why = _b0_motion(s)
    metrics |= motion | _image_metrics(s)
    skipped |= why
    extras = _extras(s, method, dropouts, spikes, params, fd, skipped)
    return QCResult(kind="dwi", metrics=metrics, extras=extras, seconds=time.perf_counter() - start)
