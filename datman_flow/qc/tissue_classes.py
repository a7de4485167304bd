"""CSF, GM and WM maps of a bias-corrected T1w brain, drawn the way ANTs' Atropos draws them,
with numpy/scipy only. MRIQC 24 segments with Atropos started from template priors (which need a
registration); the template-free form, ``Atropos -i kmeans[3] -m [0.1,1x1x1]``, is the reference
here and in ``benchmarks/segmentation_vs_ants.py``.

1. k-means (Lloyd, 1-D) on the brain's intensities, started from the partial-volume mixture's
   pure-tissue means: each class is the set of voxels nearest its mean, the mean taken over
   every voxel of the class, partial-volume ones included. A voxel half CSF and half GM thus
   goes to whichever class mean it is nearer, and on average a uniform mix of two tissues is
   split at its midpoint, which keeps the volumes right.
2. One Gaussian per class from that partition (its mean and standard deviation), as Atropos
   starts from its k-means labelling; no class proportions (Atropos' default "Socrates"
   posterior leaves them out).
3. Atropos' Markov random field: a class gains ``MRF_SMOOTHING`` x the inverse-distance (1/mm)
   weighted count of the 26 neighbours carrying its label (neighbours outside the brain do not
   count), in passes of iterated conditional modes (labels = the most probable class, then the
   prior again), ``ICM_PASSES`` times. The maps are the posteriors of the last pass.

Left out on purpose: Atropos' EM updates of the class Gaussians (five by default). They widen
the class with partial volume on both sides, grey matter, and on the synthetic head of
tests/test_qc_anat.py, whose true fractions are known, Atropos itself (run in the same brain mask
on the same corrected image) counts 0.023 of the intracranial volume too much GM at noise sigma
10; the same updates here: +0.023 after two, +0.034 after five. Without them, 0.010 at most.
``docs/metrics_anat.md`` ("Calibration against ANTs") has the figures.
"""

from __future__ import annotations

import numpy as np

MRF_SMOOTHING = 0.1  # the reference Atropos' MRF smoothing factor (m=[0.1,1x1x1]; MRIQC 24: 0.01 with priors)
ICM_PASSES = 3  # label / prior passes; the maps hardly change after the first (measured: < 0.002 icvs)
KMEANS_BINS = 4096


def kmeans_means(values: np.ndarray, start) -> np.ndarray:
    """1-D k-means (Lloyd) of ``values`` on a fine histogram, from the sorted means ``start``."""
    lo, hi = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=KMEANS_BINS, range=(lo, max(hi, lo + 1e-6)))
    x = 0.5 * (edges[:-1] + edges[1:])
    c = counts.astype(np.float64)
    mu = np.sort(np.asarray(start, dtype=np.float64))
    for _ in range(500):
        label = np.digitize(x, 0.5 * (mu[:-1] + mu[1:]))
        n = np.bincount(label, weights=c, minlength=mu.size)
        s = np.bincount(label, weights=c * x, minlength=mu.size)
        new = np.where(n > 0, s / np.maximum(n, 1e-12), mu)
        if np.allclose(new, mu, rtol=0.0, atol=1e-6 * max(hi - lo, 1e-6)):
            break
        mu = new
    return mu


def _pair_sum(a: np.ndarray, axis: int) -> np.ndarray:
    """a[i - 1] + a[i + 1] along ``axis``, zero beyond the edges."""
    lead = (slice(None),) * axis
    out = np.empty_like(a)
    np.add(a[lead + (slice(None, -2),)], a[lead + (slice(2, None),)], out=out[lead + (slice(1, -1),)])
    out[lead + (0,)] = a[lead + (1,)]
    out[lead + (-1,)] = a[lead + (-2,)]
    return out


def neighbour_sum(a: np.ndarray, zooms) -> np.ndarray:
    """Sum over the 26 neighbours of each voxel of ``a`` (at least 3 voxels along each axis), each
    weighted by 1 / its distance in mm (Atropos' MRF weights): faces, edges and corners from
    products of per-axis pair sums."""
    z = [float(v) for v in zooms[:3]]
    x, y = _pair_sum(a, 0), _pair_sum(a, 1)
    xy = _pair_sum(x, 1)
    out = _pair_sum(xy, 2)
    out *= np.float32(1.0 / np.sqrt(sum(v * v for v in z)))
    for part, weight in ((x, 1.0 / z[0]), (y, 1.0 / z[1]), (xy, 1.0 / np.hypot(z[0], z[1]))):
        out += part * np.float32(weight)
    # the z-neighbours of a, x and y (faces along z, edges xz and yz) in one pair sum
    x *= np.float32(1.0 / np.hypot(z[0], z[2]))
    y *= np.float32(1.0 / np.hypot(z[1], z[2]))
    x += y
    x += a * np.float32(1.0 / z[2])
    out += _pair_sum(x, 2)
    return out


def _crop(mask: np.ndarray) -> tuple[slice, ...]:
    idx = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0] for axis in range(3)]
    return tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)


def classify(corrected: np.ndarray, brain: np.ndarray, zooms, start) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSF, GM, WM posterior maps (3, ...) float32 in ``brain`` (0 outside), with the classes'
    means and standard deviations; ``start`` are three increasing intensities to start k-means from."""
    x = corrected[brain].astype(np.float32)
    mu = kmeans_means(x, start)
    label = np.digitize(x, (0.5 * (mu[:-1] + mu[1:])).astype(np.float32))
    n = np.maximum(np.bincount(label, minlength=3), 1)
    mu = np.bincount(label, weights=x, minlength=3) / n
    sd = np.sqrt(np.bincount(label, weights=(x - mu[label]) ** 2, minlength=3) / n)
    sd = np.maximum(sd, 1e-3 * max(float(np.ptp(x)), 1e-6))
    loglik = (-0.5 * ((x[:, None] - mu.astype(np.float32)) / sd.astype(np.float32)) ** 2
              - np.log(sd).astype(np.float32))
    box = _crop(brain)
    inside = brain[box]
    grid = inside.astype(np.float32)
    total = neighbour_sum(grid, zooms)[inside]  # the weights of all in-brain neighbours
    post = loglik
    for _ in range(ICM_PASSES):
        weight = np.empty_like(loglik)
        for k in range(2):
            grid[inside] = label == k
            weight[:, k] = neighbour_sum(grid, zooms)[inside]
        weight[:, 2] = total - weight[:, 0] - weight[:, 1]
        post = loglik + np.float32(MRF_SMOOTHING) * weight
        label = np.argmax(post, axis=1)
    post = np.exp(post - post.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    maps = np.zeros((3,) + brain.shape, dtype=np.float32)
    for k in range(3):
        maps[k][brain] = post[:, k]
    return maps, mu, sd
