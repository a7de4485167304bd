"""The slice-wise robust tests of a diffusion series: slice dropouts (SOLID-like, in the brain)
and background spikes (in the air), each a modified z-score per (volume, slice) across the
volumes of a shell. ``docs/metrics_dwi.md`` (*Dropouts*, *Spikes*) gives the rules and why
they deviate from SOLID and MRIQC; :func:`datman_flow.qc.dwi.dwi_metrics` reports them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from datman_flow.qc import common

DROPOUT_Z = -3.5  # modified z-score below which a slice of a volume is a dropout (SOLID, Iglewicz-Hoaglin)
DROPOUT_MAD_FLOOR = 0.01  # MAD floor, as a fraction of the slice's median neighbour ratio
SPIKE_Z = 6.0  # modified z-score above which a background slice is a spike (MRIQC's spike_thresh)
SPIKE_MAD_FLOOR = 0.02  # MAD floor, as a fraction of the slice's median background ratio
MIN_GROUP = 5  # volumes a shell needs for the per-slice robust tests
MIN_SLICE_FRACTION = 0.1  # a slice is tested when its mask holds >= 10% of the largest slice's voxels


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


@dataclass(frozen=True, eq=False)
class Dropouts:
    """The dropout test: slice means in the brain (volumes, slices), which slices were tested,
    the z-scores (NaN where not tested) and the dropout cells."""

    signal: np.ndarray
    tested: np.ndarray
    z: np.ndarray
    hits: np.ndarray

    def metrics(self) -> dict[str, float]:
        return {"dropout_slices": float(self.hits.sum()),
                "dropout_fraction": float(self.hits.sum() / max(np.isfinite(self.z).sum(), 1))}

    def extras(self) -> dict[str, object]:
        return {"slice_signal": _matrix(self.signal, 1), "slice_z": _matrix(self.z, 2),
                "slices_tested": self.tested.tolist(), "dropouts": _cells(self.z, self.hits),
                "dropout_threshold": DROPOUT_Z}


@dataclass(frozen=True, eq=False)
class Spikes:
    """The spike test: z-scores of the background slices (NaN where not tested), the spike
    cells, and whether the background could be used at all."""

    z: np.ndarray
    hits: np.ndarray
    measured: bool

    def extras(self) -> dict[str, object]:
        return {"spikes": _cells(self.z, self.hits), "spike_threshold": SPIKE_Z}


def slice_dropouts(data: np.ndarray, brain: np.ndarray, groups: list[np.ndarray]) -> Dropouts:
    """Per-slice mean signal in the brain over that of the neighbouring slices, robust z across
    the volumes of each shell; a dropout is z < ``DROPOUT_Z``."""
    signal, counts = slice_means(data, brain)
    tested = (counts >= MIN_SLICE_FRACTION * counts.max()) & (counts >= 20)
    z = modified_z(neighbour_ratio(signal), groups, DROPOUT_MAD_FLOOR)
    z[:, ~tested] = np.nan
    return Dropouts(signal, tested, z, np.nan_to_num(z, nan=0.0) < DROPOUT_Z)


def background_spikes(data: np.ndarray, head: np.ndarray, groups: list[np.ndarray], reference: int) -> Spikes:
    """Per-slice mean of the air over the volume's mean air, robust z across the volumes of each
    shell; a spike is z > ``SPIKE_Z``. Not measured when the air (judged on volume ``reference``)
    is mostly zero or too small."""
    air = ~ndi.binary_dilation(head, iterations=3)
    background, air_counts = slice_means(data, air)
    whole = background @ air_counts / max(air_counts.sum(), 1)
    if air_counts.sum() >= 1000 and np.mean(data[..., reference][air] > 0) >= 0.1:
        ratio = background / np.maximum(whole, 1e-6)[:, None]
        z = modified_z(ratio, groups, SPIKE_MAD_FLOOR)
        z[:, air_counts < 100] = np.nan
        return Spikes(z, np.nan_to_num(z, nan=0.0) > SPIKE_Z, True)
    return Spikes(np.full(background.shape, np.nan), np.zeros(background.shape, dtype=bool), False)
