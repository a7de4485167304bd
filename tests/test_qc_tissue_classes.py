"""The Atropos-like tissue classes of a corrected T1w brain (qc/tissue_classes.py): the MRF's
neighbour weights, k-means, and the maps of a synthetic brain whose classes are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from datman_flow.qc.tissue_classes import classify, kmeans_means, neighbour_sum


@pytest.mark.parametrize("zooms", [(1.0, 1.0, 1.0), (1.0, 1.2, 2.5)])
def test_neighbour_sum_weights_the_26_neighbours_by_inverse_distance(zooms):
    a = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"))
    distance = np.sqrt(sum((offsets[i] * zooms[i]) ** 2 for i in range(3)))
    kernel = np.where(distance > 0, 1.0 / np.where(distance > 0, distance, 1.0), 0.0)  # Atropos: 1 / mm, not self
    expected = ndi.correlate(a.astype(np.float64), kernel, mode="constant")
    assert np.abs(neighbour_sum(a, zooms) - expected).max() < 1e-5
    # a voxel deep inside a uniform block sees 6 faces, 12 edges and 8 corners at 1 mm
    if zooms == (1.0, 1.0, 1.0):
        inner = neighbour_sum(np.ones((5, 5, 5), np.float32), zooms)[2, 2, 2]
        assert inner == pytest.approx(6 + 12 / np.sqrt(2) + 8 / np.sqrt(3), rel=1e-6)


def test_kmeans_finds_three_separated_clusters_from_a_poor_start():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(m, 5.0, n) for m, n in ((100.0, 2000), (300.0, 5000), (500.0, 3000))])
    assert kmeans_means(values.astype(np.float32), [150.0, 200.0, 450.0]) == pytest.approx([100, 300, 500], abs=1.0)


def brain_blocks(noise: float, seed: int = 2):
    """A 40x40x40 'brain' in a 44^3 image: CSF, GM and WM slabs (known labels) with Gaussian noise."""
    labels = np.zeros((44, 44, 44), dtype=np.uint8)
    labels[2:42, 2:42, 2:42] = 3
    labels[2:42, 2:42, 2:12] = 1
    labels[2:42, 2:42, 12:24] = 2
    means = np.array([0.0, 200.0, 550.0, 850.0], dtype=np.float32)
    image = means[labels] + np.random.default_rng(seed).normal(0.0, noise, labels.shape).astype(np.float32)
    return image, labels > 0, labels


def test_classify_recovers_known_classes_and_gives_posteriors():
    image, brain, truth = brain_blocks(noise=60.0)
    maps, means, sigmas = classify(image, brain, (1.0, 1.0, 1.0), [150.0, 500.0, 900.0])
    assert maps.shape == (3,) + image.shape and maps.dtype == np.float32
    assert np.allclose(maps[:, brain].sum(axis=0), 1.0, atol=1e-5) and not maps[:, ~brain].any()
    assert means == pytest.approx([200.0, 550.0, 850.0], abs=10.0)
    assert sigmas == pytest.approx([60.0] * 3, rel=0.15)
    labels = np.argmax(maps, axis=0) + 1
    assert (labels[brain] == truth[brain]).mean() > 0.995
    # volumes: the class totals match the slabs' sizes (a quarter, 0.3 and 0.45 of the brain)
    totals = maps[:, brain].sum(axis=1) / brain.sum()
    assert totals == pytest.approx([0.25, 0.30, 0.45], abs=0.005)


def test_the_mrf_removes_isolated_misclassified_voxels(monkeypatch):
    # noise wide enough that about 6 % of the voxels lie nearer another class' mean
    image, brain, truth = brain_blocks(noise=95.0, seed=3)

    def wrong() -> float:
        maps, _, _ = classify(image, brain, (1.0, 1.0, 1.0), [150.0, 500.0, 900.0])
        return float((np.argmax(maps, axis=0)[brain] + 1 != truth[brain]).mean())

    with_mrf = wrong()
    monkeypatch.setattr("datman_flow.qc.tissue_classes.MRF_SMOOTHING", 0.0)
    without = wrong()
    assert without > 0.05 and with_mrf < 0.6 * without  # measured: 0.062 and 0.026
