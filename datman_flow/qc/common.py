"""Image-quality measures shared by the anatomical and functional metrics (numpy/scipy only).

Definitions follow MRIQC (``mriqc/qc/anatomical.py`` and ``mriqc/interfaces/anatomical.py``);
``docs/metrics_anat.md`` gives the formulas and every deviation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from scipy import special, stats

# sqrt((4 - pi) / 2) = 0.6551: the standard deviation of a Rayleigh variable (magnitude noise in
# the air) over the sigma of the underlying Gaussian (Dietrich 2007, eq. A.12). MRIQC's code
# multiplies by this (0.6551364), i.e. divides by sqrt(2 / (4 - pi)) as its docstring writes.
DIETRICH_FACTOR = math.sqrt((4.0 - math.pi) / 2.0)
# Ratio of a Gaussian's full width at half maximum to its standard deviation, sqrt(8 ln 2).
SIGMA_TO_FWHM = math.sqrt(8.0 * math.log(2.0))
# statsmodels' ``robust.scale.mad`` divides the median absolute deviation by Phi^-1(3/4).
MAD_NORMAL = 0.6744897501960817
SUMMARY_FIELDS = ("mean", "median", "stdv", "p05", "p95", "k", "mad", "n")


def efc(img: np.ndarray, framemask: np.ndarray | None = None) -> float:
    """Entropy focus criterion normalised by its maximum: 1 for a constant image, 0 when all
    the energy is in one voxel. Voxels where ``framemask`` is set (rotation padding) are left
    out; negative intensities are treated as 0 (MRIQC clips them before calling ``efc``)."""
    data = np.asarray(img)
    if framemask is not None:
        data = data[~np.asarray(framemask, dtype=bool)]
    data = np.clip(data.astype(np.float64, copy=False).ravel(), 0.0, None)
    n_vox = data.size
    peak = float(data.max()) if n_vox else 0.0
    if n_vox < 2 or peak <= 0.0:
        return 0.0 if n_vox else float("nan")
    # Scale by the maximum first: a constant image becomes exactly ones, so the entropy sum and
    # the maximum-entropy term below are computed by the same float operations (EFC == 1.0).
    q = data / peak
    sum_q = float(q.sum())
    root_energy = math.sqrt(float(np.dot(q, q)))
    sum_qlogq = float(special.xlogy(q, q).sum())
    entropy = (sum_qlogq - sum_q * math.log(root_energy)) / root_energy
    entropy_max = (0.0 - n_vox * math.log(math.sqrt(n_vox))) / math.sqrt(n_vox)
    return float(entropy / entropy_max) + 0.0  # never -0.0


def fber(img: np.ndarray, headmask: np.ndarray, rotmask: np.ndarray | None = None) -> float:
    """Foreground-background energy ratio: median of squared intensities in the head over the
    median of squared intensities in the air (outside the head and the rotation mask).
    -1 when the air is (nearly) zero, e.g. a skull-stripped image."""
    head = np.asarray(headmask, dtype=bool)
    air = ~head
    if rotmask is not None:
        air &= ~np.asarray(rotmask, dtype=bool)
    if not head.any() or not air.any():
        return -1.0
    fg = float(np.median(np.square(np.abs(img[head]), dtype=np.float64)))
    bg = float(np.median(np.square(np.abs(img[air]), dtype=np.float64)))
    if bg < 1.0e-3:
        return -1.0
    return fg / bg


def fwhm(
    img: np.ndarray, mask: np.ndarray, zooms: tuple[float, float, float]
) -> tuple[float, float, float, float]:
    """Smoothness (mm) along x, y, z and their mean, by AFNI's classic first-difference
    estimator (``3dFWHMx -classic``, ``mri_estimate_FWHM_1dif``):
    ``FWHM_d = sqrt(-2 ln 2 / ln(1 - var(diff_d) / (2 var))) * zoom_d`` where ``var`` is the
    variance of the voxels in ``mask`` and ``diff_d`` the differences between neighbours along
    ``d`` that are both in the mask. A direction that cannot be estimated gives -1; the mean is
    that of the valid directions (MRIQC averages the three arithmetically)."""
    data = np.asarray(img, dtype=np.float32)
    inside = np.asarray(mask, dtype=bool)
    values = data[inside].astype(np.float64)
    if values.size < 9:
        return (-1.0, -1.0, -1.0, -1.0)
    var = float(values.var(ddof=1))
    out: list[float] = []
    for axis in range(3):
        if data.shape[axis] < 2 or var <= 0.0:
            out.append(-1.0)
            continue
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        both = inside[tuple(lo)] & inside[tuple(hi)]
        diffs = (data[tuple(hi)][both] - data[tuple(lo)][both]).astype(np.float64)
        if diffs.size < 6:
            out.append(-1.0)
            continue
        arg = 1.0 - 0.5 * float(diffs.var(ddof=1)) / var
        if arg <= 0.0 or arg >= 1.0:
            out.append(-1.0)
            continue
        sigma = math.sqrt(-1.0 / (4.0 * math.log(arg))) * float(zooms[axis])
        out.append(SIGMA_TO_FWHM * sigma)
    valid = [v for v in out if v > 0]
    avg = float(np.mean(valid)) if valid else -1.0
    return (out[0], out[1], out[2], avg)


def mad(values: np.ndarray) -> float:
    """Median absolute deviation scaled to a Gaussian's sigma (statsmodels' ``mad``, as MRIQC)."""
    if values.size == 0:
        return 0.0
    med = np.median(values)
    return float(np.median(np.abs(values - med)) / MAD_NORMAL)


def summary_stats(img: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """``summary_{label}_{mean,median,stdv,p05,p95,k,mad,n}`` for each binary mask.

    The masks are used as given (MRIQC thresholds partial-volume maps at 0.85 and erodes them
    before this step; the caller does that). ``stdv`` is the population standard deviation,
    ``k`` the Fisher kurtosis (scipy, biased), ``mad`` the scaled MAD. Following MRIQC, a
    background with fewer than 1,000 voxels reports zeros (and its count); an empty mask of
    another label reports zeros too rather than NaN."""
    out: dict[str, float] = {}
    for label, mask in masks.items():
        values = np.asarray(img)[np.asarray(mask, dtype=bool)].astype(np.float64)
        row = dict.fromkeys(SUMMARY_FIELDS, 0.0)
        row["n"] = float(values.size)
        if values.size and not (label == "bg" and values.size < 1000):
            p05, p50, p95 = np.percentile(values, [5, 50, 95])
            row.update(
                mean=float(values.mean()),
                median=float(p50),
                stdv=float(values.std()),
                p05=float(p05),
                p95=float(p95),
                k=float(stats.kurtosis(values)) if values.size > 3 and values.std() > 0 else 0.0,
                mad=mad(values),
            )
        out.update({f"summary_{label}_{key}": value for key, value in row.items()})
    return out


def snr(mu_fg: float, sigma_fg: float, n: float) -> float:
    """SNR of one region: ``mu / (sigma * sqrt(n / (n - 1)))`` (MRIQC passes the median as mu;
    ``n`` is the voxel count, under MRIQC 24 the sum of the region's partial-volume map)."""
    if n < 2 or sigma_fg <= 0:
        return float("nan")
    return float(mu_fg / (sigma_fg * math.sqrt(n / (n - 1.0))))


def snr_dietrich(mu_fg: float, mad_air: float, sigma_air: float | None = None) -> float:
    """Dietrich's SNR with the air as noise reference, as MRIQC's code computes it:
    ``sqrt((4 - pi) / 2) * mu / MAD_air`` (the Rayleigh spread of magnitude noise in the air
    converted to the Gaussian sigma). As MRIQC, when the MAD is not above 1 (on its
    WM-median-1000 scale) the air's standard deviation is used if given and above 1e-3;
    otherwise -1."""
    if mad_air > 1.0:
        return float(DIETRICH_FACTOR * mu_fg / mad_air)
    if sigma_air is not None and sigma_air > 1.0e-3:
        return float(DIETRICH_FACTOR * mu_fg / sigma_air)
    return -1.0


def as_reported(value: float, convention: str) -> float:
    """``efc`` and ``fber`` as the convention reports them: MRIQC 24 rounds both to 4 decimals
    (``decimals=4`` in ``mriqc.qc.anatomical``), 22.x did not."""
    return round(float(value), 4) if convention == "mriqc24" else float(value)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximum between-class variance) on a histogram of ``values``."""
    hist, edges = np.histogram(values, bins=bins)
    centers = 0.5 * (edges[:-1] + edges[1:])
    weight = hist.astype(np.float64)
    w0 = np.cumsum(weight)
    w1 = w0[-1] - w0
    m0 = np.cumsum(weight * centers)
    mean0 = m0 / np.maximum(w0, 1e-12)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1e-12)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(centers[int(np.argmax(between[:-1]))])


def _steps(mm: float, zooms) -> int:
    return max(1, int(round(mm / float(np.mean([float(z) for z in zooms[:3]])))))


def dilate(mask: np.ndarray, mm: float, zooms) -> np.ndarray:
    """Dilation by about ``mm`` (repeated 18-connected steps: fast, near-spherical)."""
    return ndi.binary_dilation(mask, structure=ndi.generate_binary_structure(3, 2), iterations=_steps(mm, zooms))


def erode(mask: np.ndarray, mm: float, zooms) -> np.ndarray:
    """Erosion by about ``mm``; the outside of the array counts as background."""
    return ndi.binary_erosion(mask, structure=ndi.generate_binary_structure(3, 2), iterations=_steps(mm, zooms))


def close(mask: np.ndarray, mm: float, zooms) -> np.ndarray:
    """Closing by about ``mm`` on a padded copy, so that nothing sticks to the array's border."""
    pad = _steps(mm, zooms) + 1
    big = np.pad(mask, pad)
    out = erode(dilate(big, mm, zooms), mm, zooms)
    return out[pad:-pad, pad:-pad, pad:-pad]


def reconstruct(seed: np.ndarray, within: np.ndarray, steps: int) -> np.ndarray:
    """Geodesic dilation of ``seed`` inside ``within``, at most ``steps`` voxels deep."""
    return ndi.binary_dilation(
        seed & within, structure=ndi.generate_binary_structure(3, 1), iterations=steps, mask=within
    )


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndi.label(mask)
    if count <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _fill(mask: np.ndarray, plane_axis: int | None) -> np.ndarray:
    """Holes = background components that do not reach the array's faces; with
    ``plane_axis``, components are taken within each slice across that axis."""
    structure = ndi.generate_binary_structure(3, 1)
    faces = [0, 1, 2]
    if plane_axis is not None:
        structure = structure.copy()
        index = [1, 1, 1]
        for end in (0, 2):
            index[plane_axis] = end
            structure[tuple(index)] = False
        faces.remove(plane_axis)
    labels, count = ndi.label(~mask, structure=structure)
    if count == 0:
        return mask.copy()
    outside = np.zeros(count + 1, dtype=bool)
    for axis in faces:
        for end in (0, -1):
            outside[np.unique(np.take(labels, end, axis=axis))] = True
    outside[0] = True  # label 0 is the mask itself
    return mask | ~outside[labels]


def fill_holes(mask: np.ndarray, slices: bool = True) -> np.ndarray:
    """Fill 3-D holes, then (``slices``) holes in each axial and coronal slice: the mouth and
    sinuses open onto the cut at the bottom of the field of view, so 3-D filling leaves them."""
    out = _fill(np.asarray(mask, dtype=bool), None)
    if slices:
        for axis in (2, 1):
            out = _fill(out, axis)
    return out


def head_mask(img: np.ndarray, zooms) -> np.ndarray:
    """A mask of the head (scalp and everything inside it) for a T1w or a mean EPI.

    Otsu's threshold on a smoothed copy (sigma 2 mm, intensities clipped at the 99.5th
    percentile), halved so that dark skull and CSF next to the scalp stay in; the largest
    connected component; a closing by 4 mm; hole filling in 3-D and per slice."""
    z = tuple(float(v) for v in zooms[:3])
    data = np.nan_to_num(np.asarray(img, dtype=np.float32))
    smooth = ndi.gaussian_filter(data, sigma=[2.0 / v for v in z])
    positive = smooth[smooth > 0]
    if positive.size == 0:
        return np.zeros(data.shape, dtype=bool)
    top = float(np.percentile(positive, 99.5))
    threshold = 0.5 * otsu_threshold(np.clip(smooth[::2, ::2, ::2], 0.0, top).ravel())
    mask = largest_component(smooth > threshold)
    del smooth
    mask = close(mask, 4.0, z)
    return fill_holes(mask)
