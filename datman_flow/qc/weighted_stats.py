"""MRIQC 24's summary statistics, weighted by partial-volume (or binary) maps, with numpy only.

MRIQC 24.0.2's ``mriqc.qc.anatomical.summary_stats`` (since 23.1, nipreps/mriqc commit a2afd0b,
"deep revision of the summary statistics calculation") replaced 22.x's thresholded, eroded masks
by statsmodels' ``DescrStatsW`` over the whole image: the data rounded to 0 decimals and each
label's map (the weights) to 3, then

- ``mean``, ``stdv``: weighted mean and population standard deviation (sum of weights as n);
- ``median``, ``p05``, ``p95``: weighted quantiles by the SAS definition that statsmodels uses
  (weights summed over tied values; the first distinct value whose cumulative weight reaches
  q x total; where it is hit exactly, the mean of that value and the next distinct value of the
  image, whatever its weight);
- ``k``, ``mad``: Fisher kurtosis (biased, scipy) and the MAD scaled to sigma, of the unrounded
  voxels whose map exceeds half its maximum; the MAD is centred on the weighted median;
- ``n``: the sum of the (unrounded) map;

each rounded to 4 decimals. Here it is the same arithmetic on a table of the image's distinct
rounded values (bincount instead of pandas' groupby), so that each label costs one pass over
its own voxels. ``docs/metrics_anat.md`` compares it with 22.x's statistics.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

from datman_flow.qc.common import MAD_NORMAL, SUMMARY_FIELDS

QUANTILES = (0.05, 0.50, 0.95)
DECIMALS = 4  # MRIQC rounds every summary statistic to 4 decimals
DATA_DECIMALS, WEIGHT_DECIMALS = 0, 3  # MRIQC's rprec_data, rprec_prob
EXACT_HIT = 1e-10  # statsmodels: a cumulative weight this close to q x total is an exact hit
MAX_TABLE = 50_000_000  # widest range of rounded values kept as a direct (bincount) table


class RoundedImage:
    """An image rounded as MRIQC rounds it (to integers, half to even), with the index of each
    voxel's value in the image's sorted distinct values."""

    def __init__(self, img: np.ndarray):
        self.flat = np.ascontiguousarray(img).reshape(-1)  # one copy when the image is a strided view
        # Rounding to integers is exact in float32 below 2**24 (the image is scaled to a WM of 1000).
        small = self.flat.dtype == np.float32 and bool(self.flat.size) and float(np.abs(self.flat).max()) < 2.0**24
        rounded = np.rint(self.flat if small else self.flat.astype(np.float64))
        low, high = (float(rounded.min()), float(rounded.max())) if rounded.size else (0.0, 0.0)
        if high - low < MAX_TABLE:
            codes = (rounded - np.float32(low) if small else rounded - low).astype(np.int32)
            del rounded
            present = np.bincount(codes, minlength=int(high - low) + 1) > 0
            rank = (np.cumsum(present) - 1).astype(np.int32)  # table position -> index among the distinct values
            self.values = np.flatnonzero(present).astype(np.float64) + low
            self.index = rank[codes]
        else:  # a huge range (never on images scaled to a WM median of 1000): sort instead
            self.values, self.index = np.unique(rounded, return_inverse=True)

    def weighted(self, weights: np.ndarray) -> dict[str, float]:
        """The 8 statistics for one map (same shape as the image)."""
        flat_p = np.ascontiguousarray(weights).reshape(-1)
        inside = np.flatnonzero(flat_p)
        p = flat_p[inside]
        w = np.round(p.astype(np.float32), WEIGHT_DECIMALS).astype(np.float64)
        total_per_value = np.bincount(self.index[inside], weights=w, minlength=self.values.size)
        total = float(total_per_value.sum())
        row = dict.fromkeys(SUMMARY_FIELDS, 0.0)
        row["n"] = float(flat_p.sum(dtype=np.float64))
        if total <= 0.0:  # MRIQC would give NaN; an empty map reports zeros here
            return row
        mean = float(np.dot(total_per_value, self.values) / total)
        var = float(np.dot(total_per_value, (self.values - mean) ** 2) / total)
        p05, median, p95 = weighted_quantiles(self.values, total_per_value, QUANTILES)
        above = self.flat[inside[p > 0.5 * float(p.max())]].astype(np.float64)
        row.update(mean=mean, median=median, stdv=float(np.sqrt(var)), p05=p05, p95=p95,
                   k=_kurtosis(above), mad=float(np.median(np.abs(above - median)) / MAD_NORMAL) if above.size else 0.0)
        return {key: round(value, DECIMALS) if key != "n" else value for key, value in row.items()}


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, probs) -> tuple[float, ...]:
    """statsmodels' ``DescrStatsW.quantile`` (SAS definition) for sorted distinct ``values`` with
    their summed ``weights`` (zero weights allowed: they still count as the next value)."""
    cumulative = np.cumsum(weights)
    targets = np.asarray(probs, dtype=np.float64) * cumulative[-1]
    at = np.searchsorted(cumulative, targets)
    out = values[at].astype(np.float64)
    exact = (np.abs(targets - cumulative[at]) < EXACT_HIT) & (at < values.size - 1)
    out[exact] = (values[at[exact]] + values[at[exact] + 1]) / 2.0
    return tuple(float(v) for v in out)


def _kurtosis(values: np.ndarray) -> float:
    """scipy's Fisher kurtosis (biased); 0 where it is undefined (MRIQC would give NaN)."""
    if values.size < 4 or not np.ptp(values) > 0:
        return 0.0
    return float(stats.kurtosis(values))


def summary_stats(img: np.ndarray, maps: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``summary_{label}_{mean,median,stdv,p05,p95,k,mad,n}`` as MRIQC 24 computes them, for
    each partial-volume or binary map (the air is a binary mask, not eroded)."""
    rounded = RoundedImage(img)
    out: dict[str, float] = {}
    for label, weights in maps.items():
        out.update({f"summary_{label}_{key}": value for key, value in rounded.weighted(weights).items()})
    return out
