"""Brain mask, a smooth bias field and CSF/GM/WM tissue maps of a T1w image.

numpy/scipy only, standing in for MRIQC's SynthStrip + N4 + Atropos:

* brain: a BET-like deformable surface (``brain_surface``) on the image with its coil shading
  flattened; fitted again on the bias-corrected image, then grown through the CSF towards
  the skull;
* bias: a cubic polynomial fitted to log(intensity / class mean) in pure GM and WM,
  alternated with a 1-D partial-volume mixture (pure CSF, GM, WM and the CSF/GM, GM/WM mixes)
  fitted by EM to a histogram of the brain (instead of N4's B-spline field), geometric mean 1
  over the brain, fading to 1 outside it;
* tissues: on the corrected brain, three classes drawn as ANTs' Atropos draws them
  (``tissue_classes``: k-means, one Gaussian per class, Atropos' MRF), started from the
  mixture's pure-tissue means. The mixture's own fractions, which this module used before,
  put 9 points more of the Philips MPRAGE's brain in GM than Atropos: their pure-CSF mean is
  pulled down by the dark voxels under the skull (0.31 of the GM mean, while the ventricles'
  CSF is at 0.41), so much real CSF counted as CSF/GM mix, and their mean-field Potts prior
  (0.5 per neighbour, about six times Atropos' 1 mm weight) added 2 points of GM more.
  docs/metrics_anat.md, "Calibration against ANTs", has the figures.

Axis 2 must point superior (nibabel's ``as_closest_canonical`` gives RAS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .bias_field import extend_field, fit_bias, initial_field
from .brain_surface import Surface, surface_brain_mask
from .common import dilate, erode, fill_holes, head_mask, reconstruct
from .tissue_classes import classify

CLASSES = ("csf", "gm", "wm")
MIN_BRAIN_ML, MAX_BRAIN_ML = 300.0, 3000.0  # plausible brain + CSF volumes (a newborn's to a large adult's)
FIRST_FIT_INSET_MM = 6.0  # the first mixture and bias fit stay this far inside the surface
CORD_AREA = 0.03  # the cord with its CSF: 2-3 cm2, under 3 % of the brain's widest axial section
CSF_MM = 10.0  # how far the brain mask may grow through CSF towards the skull


@dataclass(frozen=True)
class Segmentation:
    head: np.ndarray  # bool, the whole head
    brain: np.ndarray  # bool, brain + CSF inside the skull
    pvms: np.ndarray  # float32 (3, X, Y, Z): CSF, GM, WM fractions, 0 outside the brain
    labels: np.ndarray  # uint8: 0 outside, 1 CSF, 2 GM, 3 WM (FSL FAST's numbering)
    bias: np.ndarray  # float32, multiplicative field (raw = corrected * bias), 1 far from the brain
    means: tuple[float, float, float]  # class means of the bias-corrected intensities
    sigmas: tuple[float, float, float]


def _crop_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    spans = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in range(3)]
    return tuple(
        slice(max(int(i[0]) - margin, 0), min(int(i[-1]) + margin + 1, n)) for i, n in zip(spans, mask.shape)
    )


def _cut_spinal_canal(mask: np.ndarray) -> np.ndarray:
    """Drop the spinal cord and its CSF: below the largest axial cross-section, everything from
    the first slice whose area is under ``CORD_AREA`` of that maximum downwards."""
    area = mask.sum(axis=(0, 1))
    if area.max() == 0:
        return mask
    widest = int(np.argmax(area))
    small = np.nonzero(area[: widest + 1][::-1] < CORD_AREA * area.max())[0]
    if small.size:
        mask = mask.copy()
        mask[:, :, : widest - int(small[0]) + 1] = False
    return mask


MIXES = ((0, 1), (1, 2))  # partial-volume classes: CSF/GM and GM/WM


def _components(mu, sd) -> tuple[np.ndarray, np.ndarray]:
    """Means and sigmas of the 5 components: CSF, GM, WM, then each mix, whose mean is the
    midpoint and whose variance adds that of a uniform mixing fraction, (mu_b - mu_a)^2 / 12."""
    mu, sd = np.asarray(mu, np.float64), np.asarray(sd, np.float64)
    m = [mu[0], mu[1], mu[2]] + [0.5 * (mu[a] + mu[b]) for a, b in MIXES]
    v = [sd[0] ** 2, sd[1] ** 2, sd[2] ** 2]
    v += [0.5 * (sd[a] ** 2 + sd[b] ** 2) + (mu[b] - mu[a]) ** 2 / 12.0 for a, b in MIXES]
    return np.array(m), np.sqrt(np.array(v))


def _log_lik(x: np.ndarray, mu, sd, w, dtype=np.float64) -> np.ndarray:
    m, s = (v.astype(dtype) for v in _components(mu, sd))
    offset = (-np.log(s) + np.log(np.asarray(w) + 1e-12)).astype(dtype)
    z = (x[:, None].astype(dtype, copy=False) - m) / s
    return np.float32(-0.5) * z * z + offset if dtype == np.float32 else -0.5 * z * z + offset


def _normalise(logp: np.ndarray) -> np.ndarray:
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def fit_mixture(values: np.ndarray, iterations: int = 300, bins: int = 512, init=None):
    """EM for a partial-volume mixture (pure CSF, GM, WM and the CSF/GM and GM/WM mixes) on a
    fine histogram of ``values``. Started from ``init`` = (mu, sd, w), or from T1w contrast:
    WM at the histogram's main peak above the median, GM at 0.65 and CSF at 0.3 of it (a
    percentile start fails when the brain mask holds little CSF). Returns the pure classes'
    (means, sigmas) ordered CSF < GM < WM, and the 5 weights."""
    lo, hi = np.percentile(values, [0.05, 99.95])
    counts, edges = np.histogram(values, bins=bins, range=(float(lo), float(hi)))
    x = 0.5 * (edges[:-1] + edges[1:])
    c = counts.astype(np.float64)
    spread = math.sqrt(float(np.sum(c * (x - np.sum(c * x) / c.sum()) ** 2) / c.sum()))
    upper = x >= np.median(values)
    peak = float(x[upper][np.argmax(ndi.gaussian_filter1d(c, 3.0)[upper])])
    mu = np.array([0.3, 0.65, 1.0]) * peak
    sd = np.full(3, max(0.08 * abs(peak), 1e-6))
    w = np.array([0.1, 0.35, 0.35, 0.1, 0.1])
    if init is not None:
        mu, sd, w = (np.array(v, dtype=np.float64) for v in init)
    floor = max(float(edges[1] - edges[0]), spread * 1e-3, 1e-6)
    for _ in range(iterations):
        post = _normalise(_log_lik(x, mu, sd, w)) * c[:, None]
        nk = post.sum(axis=0) + 1e-12
        new_mu = (post[:, :3] * x[:, None]).sum(axis=0) / nk[:3]
        new_mu = np.sort(new_mu)
        sd = np.maximum(np.sqrt((post[:, :3] * (x[:, None] - new_mu) ** 2).sum(axis=0) / nk[:3]), floor)
        w = nk / nk.sum()
        done = np.all(np.abs(new_mu - mu) < 1e-5 * spread)
        mu = new_mu
        if done:
            break
    return mu, sd, w


def _fractions(x: np.ndarray, post: np.ndarray, mu) -> np.ndarray:
    """Tissue fractions (N, 3) from the 5 posteriors: a mixed voxel is shared between its two
    tissues in proportion to where its intensity lies between their means."""
    frac = post[:, :3].copy()
    for j, (a, b) in enumerate(MIXES):
        t = np.clip((x - np.float32(mu[a])) / np.float32(max(mu[b] - mu[a], 1e-6)), 0.0, 1.0)
        frac[:, a] += post[:, 3 + j] * (1.0 - t)
        frac[:, b] += post[:, 3 + j] * t
    return frac


def _fraction_maps(corrected: np.ndarray, brain: np.ndarray, mu, sd, w) -> np.ndarray:
    """The mixture's tissue fractions (3, ...) in the brain, voxel by voxel (no spatial prior):
    what the bias field is fitted to, in its pure GM and WM voxels."""
    x = corrected[brain].astype(np.float32)
    frac = _fractions(x, _normalise(_log_lik(x, mu, sd, w, dtype=np.float32)), mu)
    maps = np.zeros((3,) + brain.shape, dtype=np.float32)
    for k in range(3):
        maps[k][brain] = frac[:, k]
    return maps


def _add_csf(brain, corrected, head, mu, zooms) -> np.ndarray:
    """Take in the CSF between the cortex and the skull: grow the brain up to ``CSF_MM`` through
    voxels of CSF-like intensity (above half the CSF mean, so not through bone or air, and
    below the CSF/GM midpoint, so not into the scalp); voxels of the outer layer of what was
    added are kept only when at least 0.9 of the CSF mean, i.e. mostly CSF rather than bone.
    Nothing is added below the brain's lowest slice, and the spinal canal is cut off."""
    brain = fill_holes(brain & (corrected > 0.5 * mu[0]), slices=False)  # no bone where the surface cut it
    csf_like = (corrected > 0.5 * mu[0]) & (corrected < 0.5 * (mu[0] + mu[1])) & head
    steps = max(1, int(round(CSF_MM / float(np.mean(zooms)))))
    zs = np.nonzero(brain.any(axis=(0, 1)))[0]
    if zs.size:
        csf_like[:, :, : zs[0]] = False
    grown = fill_holes(reconstruct(brain, brain | (csf_like & dilate(brain, CSF_MM, zooms)), steps), slices=False)
    outer = grown & ~ndi.binary_erosion(grown, structure=ndi.generate_binary_structure(3, 1))
    return _cut_spinal_canal(grown & ~(outer & ~brain & (corrected < 0.9 * mu[0]))) & head


def _fit(sub: np.ndarray, brain: np.ndarray, logfield: np.ndarray, rounds: int):
    """Alternate the mixture fit and the bias fit; returns (mu, sd, w, logfield) of the last
    round (whose mixture was fitted on the image corrected by that field)."""
    params = None
    for n in range(rounds):
        corrected = sub / np.exp(logfield)
        mu, sd, w = params = fit_mixture(corrected[brain], init=params)
        if n < rounds - 1:
            logfield = fit_bias(sub, _fraction_maps(corrected, brain, mu, sd, w), brain, mu)
    return mu, sd, w, logfield


def rough_brain(data: np.ndarray, zooms, head: np.ndarray) -> tuple[np.ndarray, np.ndarray, Surface]:
    """First-pass brain: the inside of a BET-like deformable surface (``brain_surface``),
    which copes with coil shading and 2 mm voxels; the lightly smoothed image; the surface."""
    smooth = ndi.gaussian_filter(data, sigma=[0.75 / z for z in zooms])
    mask, surface = surface_brain_mask(smooth, zooms, head)
    return mask, smooth, surface


def _clean(data) -> np.ndarray:
    """A float32 copy with NaN as 0 and nothing negative (one copy, not one per step)."""
    out = np.nan_to_num(np.array(data, dtype=np.float32, copy=True), copy=False)
    np.clip(out, 0.0, None, out=out)
    return out


def quick_brain_mask(data: np.ndarray, zooms) -> np.ndarray:
    """A brain mask without the segmentation (about a third of the time), for pictures."""
    zooms = tuple(float(z) for z in zooms[:3])
    data = _clean(data)
    return rough_brain(data, zooms, head_mask(data, zooms))[0]


def segment_t1w(data: np.ndarray, zooms, head: np.ndarray | None = None) -> Segmentation:
    """Head, brain, bias field and CSF/GM/WM maps of a T1w volume (axis 2 superior).

    Two passes: the first surface (on the shading-flattened image) gives, 6 mm inside it, the
    mixture and the bias field; the surface is fitted again on the bias-corrected image, the
    brain grown through the CSF towards the skull, and the mixture and field fitted again."""
    zooms = tuple(float(z) for z in zooms[:3])
    data = _clean(data)
    if head is None:
        head = head_mask(data, zooms)
    rough, smooth, surface = rough_brain(data, zooms, head)
    if rough.sum() < 100:
        raise ValueError("brain extraction found fewer than 100 voxels")
    box = _crop_box(rough, margin=int(round(15.0 / min(zooms))))
    sub, sub_head = data[box], head[box]
    # The first fit keeps off the surface's outer shell, where it may hold scalp (shaded images).
    core = erode(rough[box], FIRST_FIT_INSET_MM, zooms)
    if core.sum() < 0.2 * rough.sum():
        core = rough[box]
    logfield = initial_field(sub, core, zooms)
    mu, sd, w, logfield = _fit(sub, core, logfield, 3)
    corrected = smooth[box] / np.exp(logfield)
    del smooth
    offset = [s.start * z for s, z in zip(box, zooms)]
    brain, _ = surface_brain_mask(corrected, zooms, sub_head, flatten=False, start=surface.shifted(offset))
    brain = _add_csf(brain, corrected, sub_head, mu, zooms)
    mu, sd, w, logfield = _fit(sub, brain, logfield, 2)
    maps, means, sigmas = classify(sub / np.exp(logfield), brain, zooms, mu)
    brain_full = np.zeros(data.shape, dtype=bool)
    brain_full[box] = brain
    brain_ml = float(brain.sum()) * float(np.prod(zooms)) / 1000.0
    if not MIN_BRAIN_ML <= brain_ml <= MAX_BRAIN_ML:
        raise ValueError(f"brain extraction failed: {brain_ml:.0f} ml found (expected {MIN_BRAIN_ML:.0f}-"
                         f"{MAX_BRAIN_ML:.0f} ml); strong coil shading or an unusual field of view?")
    bias = extend_field(logfield, box, brain_full, zooms)
    pvms = np.zeros((3,) + data.shape, dtype=np.float32)
    pvms[(slice(None),) + box] = maps
    labels = np.zeros(data.shape, dtype=np.uint8)
    labels[box][brain] = (np.argmax(maps[:, brain], axis=0) + 1).astype(np.uint8)
    return Segmentation(
        head=head, brain=brain_full, pvms=pvms, labels=labels, bias=bias,
        means=tuple(float(v) for v in means), sigmas=tuple(float(v) for v in sigmas),
    )
