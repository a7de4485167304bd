"""The smooth multiplicative bias field of a T1w image, as a cubic polynomial in x, y, z
(standing in for N4's B-spline field): a first guess from the brain's local mean intensity,
then fits to log(intensity / tissue mean) in pure GM and WM (``segment.py`` alternates them
with the tissue mixture), and its extension to the whole image."""

from __future__ import annotations

from itertools import product

import numpy as np
from scipy import ndimage as ndi

from .brain_surface import SHADING_MM

POLY_ORDER = 3
FADE_MM = 20.0  # the bias field fades to 1 this far outside the brain
MAX_LOG_FIELD = 1.5  # the bias field stays within exp(+-1.5) = 0.22..4.5


def _unit_axes(shape) -> list[np.ndarray]:
    """Voxel coordinates along each axis scaled to [-1, 1]."""
    return [np.linspace(-1.0, 1.0, n, dtype=np.float32) if n > 1 else np.zeros(1, np.float32) for n in shape]


def _poly_field(shape, idx, target: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """A cubic polynomial in the voxel coordinates fitted (least squares) to ``target`` at the
    voxels ``idx``; centred to mean 0 over the brain and clipped to its in-brain range."""
    axes = _unit_axes(shape)
    terms = [e for e in product(range(POLY_ORDER + 1), repeat=3) if sum(e) <= POLY_ORDER]
    if idx[0].size < 10 * len(terms):
        return np.zeros(shape, dtype=np.float32)
    design = np.stack([axes[0][idx[0]] ** a * axes[1][idx[1]] ** b * axes[2][idx[2]] ** c for a, b, c in terms], 1)
    coef = np.linalg.lstsq(design.astype(np.float64), target, rcond=None)[0]
    tensor = np.zeros((POLY_ORDER + 1,) * 3, dtype=np.float32)
    for k, (a, b, c) in zip(coef, terms):
        tensor[a, b, c] = k
    powers = [np.stack([ax**p for p in range(POLY_ORDER + 1)], axis=1) for ax in axes]  # (n_i, 4) each
    # sum_abc k_abc x^a y^b z^c, one axis at a time (a full-size array per term would cost seconds)
    field = np.einsum("ia,jb,abc->ijc", powers[0], powers[1], tensor) @ powers[2].T
    inside = field[brain]
    field -= np.float32(inside.mean())  # geometric mean 1 over the brain
    lo = max(float(inside.min() - inside.mean()), -MAX_LOG_FIELD)
    hi = min(float(inside.max() - inside.mean()), MAX_LOG_FIELD)
    np.clip(field, lo, max(lo, hi), out=field)
    return field


def _subsample(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    idx = np.nonzero(mask)
    step = max(1, idx[0].size // 200_000)
    return tuple(i[::step] for i in idx)


def fit_bias(data: np.ndarray, maps: np.ndarray, brain: np.ndarray, mu) -> np.ndarray:
    """log-field: cubic polynomial fitted to log(I / mu_class) where GM or WM posterior > 0.9."""
    idx = _subsample(brain & ((maps[1] > 0.9) | (maps[2] > 0.9)) & (data > 0))
    cls = np.where(maps[2][idx] > 0.9, 2, 1)
    target = np.log(data[idx] / np.asarray(mu, dtype=np.float64)[cls])
    return _poly_field(data.shape, idx, target, brain)


def initial_field(data: np.ndarray, brain: np.ndarray, zooms) -> np.ndarray:
    """A first log-field before any tissue is known: the cubic polynomial through the log of the
    brain's local mean intensity (Gaussian, ``SHADING_MM`` sigma, normalised by the brain's
    share of the kernel). A strong shading, e.g. a dark centre under a 64-channel coil without
    prescan normalisation, would otherwise swap GM and WM in the first mixture fit."""
    step = tuple(max(1, int(round(4.0 / float(z)))) for z in zooms[:3])  # a 4 mm grid is plenty
    coarse = tuple(slice(None, None, k) for k in step)
    sigma = [SHADING_MM / (float(z) * k) for z, k in zip(zooms[:3], step)]
    inside = brain[coarse].astype(np.float32)
    local = ndi.gaussian_filter(data[coarse] * inside, sigma) / np.maximum(ndi.gaussian_filter(inside, sigma), 1e-3)
    idx = np.nonzero(brain[coarse] & (local > 0))
    target = np.log(local[idx].astype(np.float64))
    return _poly_field(data.shape, tuple(i * k for i, k in zip(idx, step)), target, brain)


def extend_field(logfield: np.ndarray, box, brain: np.ndarray, zooms) -> np.ndarray:
    """The multiplicative field over the whole image: the fitted field in the brain; outside
    it the nearest in-box value fading linearly to 1 over ``FADE_MM`` from the brain (the field
    is only measured where there is brain: a value extrapolated onto the scalp or the neck
    would invent signal there). Distances come from a 2x coarser grid."""
    idx = [np.clip(np.arange(n), s.start, s.stop - 1) - s.start for s, n in zip(box, brain.shape)]
    coarse = ndi.distance_transform_edt(~brain[::2, ::2, ::2], sampling=[2.0 * float(z) for z in zooms])
    for axis, n in enumerate(brain.shape):
        coarse = np.repeat(coarse, 2, axis=axis).take(np.arange(n), axis=axis)
    weight = np.clip(1.0 - coarse.astype(np.float32) / np.float32(FADE_MM), 0.0, 1.0)
    weight[brain] = 1.0
    return np.exp(logfield[np.ix_(*idx)] * weight)
