"""The brain mask of an EPI volume (the mean BOLD, the mean b=0 of a diffusion series): an AFNI
``3dAutomask``-like clip-level mask inside the head, and the ``3dClipLevel``-like threshold it
uses. ``docs/metrics_fmri.md`` (step 5) describes it; :mod:`datman_flow.qc.fmri` and
:mod:`datman_flow.qc.dwi` both use it."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from datman_flow.qc import common


def clip_level(values: np.ndarray, mfrac: float = 0.5) -> float:
    """AFNI ``3dClipLevel``-like threshold: ``mfrac`` times the median of the voxels above it."""
    v = values[values > 0]
    if v.size == 0:
        return 0.0
    level = mfrac * float(np.median(v))
    for _ in range(30):
        new = mfrac * float(np.median(v[v > level]))
        if abs(new - level) <= 1e-4 * max(level, 1e-12):
            break
        level = new
    return level


def brain_mask(mean_epi: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Voxels of the head above the clip level, opened once (peels off thin strands of scalp),
    largest connected component, holes filled."""
    mask = (mean_epi > clip_level(mean_epi[head])) & head
    mask = ndi.binary_opening(mask, structure=ndi.generate_binary_structure(3, 1))
    mask = common.largest_component(mask)
    return common.fill_holes(mask) & head if mask.any() else mask
