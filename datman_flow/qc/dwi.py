"""Diffusion (DWI) image-quality metrics from a dcm2niix NIfTI + .bval + .bvec, numpy/scipy only.

Shells from the b-values, the b=0 signal-to-noise ratio, per-shell tSNR, slice dropouts by a
SOLID-style robust test, background spikes, head motion of the b=0 volumes (framewise
displacement), EFC, FBER and summary statistics of the mean b=0. Slices are taken along the
third voxel axis, as dcm2niix stores 2D acquisitions. ``docs/metrics_dwi.md`` gives every
formula, threshold and deviation from MRIQC's diffusion IQMs.
"""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi
from scipy import stats

from datman_flow.qc import common
from datman_flow.qc.epi_mask import brain_mask
from datman_flow.qc.realign import framewise_displacement, realign
from datman_flow.qc.result import QCResult

B0_THRESHOLD = 50.0  # s/mm^2: b <= this is a b=0 volume (MRIQC's b0_threshold)
SHELL_GAP = 100.0  # s/mm^2: sorted b-values further apart than this start a new shell
DIRECTION_COS = float(np.cos(np.radians(1.0)))  # directions within 1 degree (or antipodal) are one
DROPOUT_Z = -3.5  # modified z-score below which a slice of a volume is a dropout (SOLID, Iglewicz-Hoaglin)
DROPOUT_MAD_FLOOR = 0.01  # MAD floor, as a fraction of the slice's median neighbour ratio
SPIKE_Z = 6.0  # modified z-score above which a background slice is a spike (MRIQC's spike_thresh)
SPIKE_MAD_FLOOR = 0.02  # MAD floor, as a fraction of the slice's median background ratio
MIN_GROUP = 5  # volumes a shell needs for the per-slice robust tests
MIN_SLICE_FRACTION = 0.1  # a slice is tested when its mask holds >= 10% of the largest slice's voxels
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


def slice_means(data: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(volumes, slices) mean intensity of each slice within ``mask``, and the voxel counts."""
    counts = mask.sum(axis=(0, 1))
    sums = np.einsum("xyzv,xyz->vz", data, mask.astype(data.dtype), optimize=True)
    return sums / np.maximum(counts, 1)[None, :], counts


def neighbour_ratio(signal: np.ndarray) -> np.ndarray:
    """Each slice's signal over the mean of its two neighbours in the same volume (one at the
    ends): divides out the direction-dependent signal that neighbouring slices share."""
    near = np.empty_like(signal)
    near[:, 1:-1] = 0.5 * (signal[:, :-2] + signal[:, 2:])
    near[:, 0], near[:, -1] = signal[:, min(1, signal.shape[1] - 1)], signal[:, max(signal.shape[1] - 2, 0)]
    return signal / np.maximum(near, 1e-6 * max(float(np.abs(signal).max()), 1e-12))


def modified_z(values: np.ndarray, groups: list[np.ndarray], floor: float) -> np.ndarray:
    """0.6745 (x - median) / MAD along the volumes of each group, per slice; NaN for volumes of
    groups smaller than ``MIN_GROUP``. The MAD is kept >= ``floor`` times |median|."""
    z = np.full(values.shape, np.nan)
    for idx in groups:
        if idx.size < MIN_GROUP:
            continue
        block = values[idx]
        med = np.median(block, axis=0)
        mad = np.maximum(np.median(np.abs(block - med), axis=0), floor * np.abs(med))
        with np.errstate(invalid="ignore", divide="ignore"):
            z[idx] = np.where(mad > 0, common.MAD_NORMAL * (block - med) / mad, np.nan)
    return z


def _cells(z: np.ndarray, hit: np.ndarray) -> list[list[float]]:
    return [[int(v), int(k), round(float(z[v, k]), 2)] for v, k in np.argwhere(hit)]


def _matrix(values: np.ndarray, decimals: int) -> list[list[float | None]]:
    return [[None if not np.isfinite(x) else round(float(x), decimals) for x in row] for row in values]


def load_dwi(nifti) -> tuple[np.ndarray, tuple[float, float, float]]:
    img = nib.load(str(nifti)) if isinstance(nifti, (str, Path)) else nifti
    if len(img.shape) != 4:
        raise ValueError(f"not a 4D diffusion series: shape {img.shape}")
    data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    data = np.clip(np.nan_to_num(data), 0.0, None)  # MRIQC zeroes negative intensities
    return data, tuple(float(z) for z in img.header.get_zooms()[:3])


def dwi_metrics(nifti: Path, bval: Path, bvec: Path) -> QCResult:
    """Diffusion QC metrics of one series (see the module docstring)."""
    start = time.perf_counter()
    data, zooms = load_dwi(nifti)
    bvals, bvecs = read_gradients(bval, bvec, data.shape[3])
    labels = shell_labels(bvals)
    shells = sorted(set(labels[labels > 0].tolist()))
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
    skipped: dict[str, str] = {}
    metrics: dict[str, float] = {"n_volumes": float(data.shape[3]), "n_b0": float(b0.size),
                                 "n_shells": float(len(shells)),
                                 "n_directions": float(count_directions(bvecs[labels > 0]))}

    sigma, method = noise_sigma(data, bvals, bvecs, labels, core, head)
    if b0.size and np.isfinite(sigma) and sigma > 0:
        metrics["snr_b0"] = float(mean_b0[brain].mean() / sigma)
        metrics["sigma_b0"] = sigma
    else:
        skipped["snr_b0"] = "no b=0 volume" if not b0.size else "no noise estimate (1 b=0, <10 volumes, no air)"
    groups = {0: b0, **{s: np.flatnonzero(labels == s) for s in shells}}
    inside = data[brain]
    for label, idx in groups.items():
        if idx.size >= 2:
            block = inside[:, idx]
            std = block.std(axis=1, ddof=1)
            ratio = np.divide(block.mean(axis=1), std, out=np.zeros(std.shape), where=std > 1e-3)
            metrics[f"tsnr_b{label}"] = float(np.median(ratio))
        else:
            skipped[f"tsnr_b{label}"] = f"{idx.size} volume(s)"

    # Slice dropouts (SOLID-like): per-slice mean signal in the brain over that of the neighbouring
    # slices, robust z across the volumes of the shell.
    signal, counts = slice_means(data, brain)
    tested = (counts >= MIN_SLICE_FRACTION * counts.max()) & (counts >= 20)
    z_drop = modified_z(neighbour_ratio(signal), list(groups.values()), DROPOUT_MAD_FLOOR)
    z_drop[:, ~tested] = np.nan
    dropouts = np.nan_to_num(z_drop, nan=0.0) < DROPOUT_Z
    metrics["dropout_slices"] = float(dropouts.sum())
    metrics["dropout_fraction"] = float(dropouts.sum() / max(np.isfinite(z_drop).sum(), 1))

    # Spikes: per-slice mean of the air over the volume's mean air, robust z across a shell's volumes.
    air = ~ndi.binary_dilation(head, iterations=3)
    background, air_counts = slice_means(data, air)
    whole = background @ air_counts / max(air_counts.sum(), 1)
    z_spike = np.full(background.shape, np.nan)
    if air_counts.sum() >= 1000 and np.mean(data[..., reference[0]][air] > 0) >= 0.1:
        ratio = background / np.maximum(whole, 1e-6)[:, None]
        z_spike = modified_z(ratio, list(groups.values()), SPIKE_MAD_FLOOR)
        z_spike[:, air_counts < 100] = np.nan
        spikes = np.nan_to_num(z_spike, nan=0.0) > SPIKE_Z
        metrics["spikes"] = float(spikes.sum())
    else:
        spikes = np.zeros(background.shape, dtype=bool)
        skipped["spikes"] = "no usable background (zeroed or too small)"

    params = np.zeros((0, 6))
    fd = np.zeros(0)
    if b0.size >= 2:
        params = realign(data[..., b0], zooms, reference=0)
        fd = framewise_displacement(params, FD_RADIUS)
        metrics["fd_mean"], metrics["fd_max"] = float(fd.mean()), float(fd.max())
    else:
        skipped["fd_mean"] = skipped["fd_max"] = f"{b0.size} b=0 volume(s): motion needs two"

    metrics.update(efc=common.efc(mean_b0), fber=common.fber(mean_b0, head))
    metrics.update(common.summary_stats(mean_b0, {"fg": brain, "bg": ~brain}))
    metrics.update({f"size_{a}": float(n) for a, n in zip("xyzt", data.shape)})
    metrics.update({f"spacing_{a}": z for a, z in zip("xyz", zooms)})
    extras = {
        "bvalues": [round(float(b), 1) for b in bvals],
        "shell_of_volume": labels.tolist(),
        "shells": [{"bvalue": int(s), "n_volumes": int((labels == s).sum()),
                    "n_directions": count_directions(bvecs[labels == s]),
                    "volumes": np.flatnonzero(labels == s).tolist()} for s in shells],
        "n_directions_per_shell": {str(s): count_directions(bvecs[labels == s]) for s in shells},
        "b0_volumes": b0.tolist(),
        "noise_method": method,
        "slice_signal": _matrix(signal, 1),
        "slice_z": _matrix(z_drop, 2),
        "slices_tested": tested.tolist(),
        "dropouts": _cells(z_drop, dropouts),
        "dropout_threshold": DROPOUT_Z,
        "spikes": _cells(z_spike, spikes),
        "spike_threshold": SPIKE_Z,
        "motion_params": np.round(params, 6).tolist(),
        "motion_columns": ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"],
        "fd": np.round(fd, 5).tolist(),
        "brain_mask_voxels": int(brain.sum()),
        "head_mask_voxels": int(head.sum()),
        "not_measured": skipped,
    }
    return QCResult(kind="dwi", metrics=metrics, extras=extras, seconds=time.perf_counter() - start)
