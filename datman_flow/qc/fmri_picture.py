"""One PNG per BOLD series for an operator: mean and temporal-std maps, FD and DVARS traces and a
carpet plot (MRIQC's functional report condensed), drawn with matplotlib's object API from an
:class:`~datman_flow.qc.fmri.FmriAnalysis`: nothing is realigned or resampled again here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import ndimage as ndi

from datman_flow.atomic import save_figure_atomic
from datman_flow.qc.fmri import FD_THRESHOLD, FmriAnalysis
from datman_flow.qc.result import QCResult

N_SLICES = 7
CARPET_ROWS = 4000  # voxels shown in the carpet (evenly spaced in the sorted order)
RIM_MM = 6.0  # depth that separates the outer (cortex-like) band of the carpet from the deep one


def _slices(mask: np.ndarray) -> list[int]:
    k = np.nonzero(mask.any(axis=(0, 1)))[0]
    if k.size == 0:
        return list(np.linspace(0, mask.shape[2] - 1, N_SLICES).astype(int))
    lo, hi = k[0] + 0.12 * (k[-1] - k[0]), k[-1] - 0.08 * (k[-1] - k[0])
    return [int(round(v)) for v in np.linspace(lo, hi, N_SLICES)]


def _montage(fig, spec, image, mask, slices, cmap, vmax, label):
    for col, k in enumerate(slices):
        ax = fig.add_subplot(spec[col])
        ax.imshow(image[:, :, k].T, origin="lower", cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.contour(mask[:, :, k].T, levels=[0.5], colors="#4fc3f7", linewidths=0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("black")
        ax.text(0.03, 0.04, f"z={k}", color="white", fontsize=7, transform=ax.transAxes)
        if col == 0:
            ax.set_ylabel(label, fontsize=9)
        if col == len(slices) - 1:
            ax.text(0.97, 0.04, "R", color="white", fontsize=7, ha="right", transform=ax.transAxes)


def _carpet(series: np.ndarray, mask: np.ndarray, zooms) -> tuple[np.ndarray, int]:
    """Rows: brain voxels (``series`` holds them in ``np.nonzero(mask)`` order), outer band first
    then deeper, at most ``CARPET_ROWS`` of them, each z-scored after removing a linear trend;
    returns the image and the row where the deep band starts."""
    depth = ndi.distance_transform_edt(mask, sampling=zooms)[mask]
    order = np.argsort(depth, kind="stable")
    rows = order[np.linspace(0, order.size - 1, min(CARPET_ROWS, order.size)).astype(int)]
    split = int(np.searchsorted(depth[rows], RIM_MM))
    chosen = series[rows].astype(np.float64)
    t = np.linspace(-1.0, 1.0, chosen.shape[1])
    design = np.stack([np.ones_like(t), t], axis=1)
    beta, *_ = np.linalg.lstsq(design, chosen.T, rcond=None)
    resid = chosen - (design @ beta).T
    std = resid.std(axis=1, keepdims=True)
    return np.divide(resid, std, out=np.zeros_like(resid), where=std > 0), split


def _trace(ax, values, color, label, threshold=None, start=1):
    x = np.arange(start, start + len(values))
    ax.plot(x, values, color=color, linewidth=1.1)
    ax.fill_between(x, 0, values, color=color, alpha=0.15)
    if threshold is not None:
        ax.axhline(threshold, color="#d32f2f", linestyle="--", linewidth=0.8)
        ax.text(1.002, threshold, f"{threshold:g}", color="#d32f2f", fontsize=7, va="center",
                transform=ax.get_yaxis_transform())
        over = np.asarray(values) > threshold
        ax.scatter(x[over], np.asarray(values)[over], color="#d32f2f", s=9, zorder=3)
    ax.set_ylabel(label, fontsize=8)
    ax.set_ylim(bottom=0.0)
    ax.tick_params(labelsize=7, labelbottom=False)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _title(result: QCResult, name: str) -> str:
    m = result.metrics
    parts = [
        f"tSNR {m.get('tsnr', float('nan')):.1f}",
        f"FD mean {m.get('fd_mean', float('nan')):.2f} mm ({m.get('fd_perc', float('nan')):.0f}% > {FD_THRESHOLD} mm)",
        f"DVARS std {m.get('dvars_std', float('nan')):.2f}",
        f"GSR x/y {m.get('gsr_x', float('nan')):.3f}/{m.get('gsr_y', float('nan')):.3f}",
        f"AOR {m.get('aor', float('nan')):.4f}",
        f"dummies {int(m.get('dummy_trs', 0))}",
    ]
    return f"{name}\n" + "   |   ".join(parts)


def fmri_picture(analysis: FmriAnalysis, out_png: Path, *, name: str = "BOLD") -> Path:
    """Draw the BOLD QC picture of ``analysis`` (:func:`~datman_flow.qc.fmri.fmri_analysis`, or
    :func:`~datman_flow.qc.fmri.reanalyse` for a stored result) under the title ``name``;
    atomic write."""
    out_png = Path(out_png)
    result, mask, mean, std = analysis.result, analysis.brain, analysis.mean_epi, analysis.std_epi
    slices = _slices(mask)
    n = analysis.series.shape[1]
    carpet, split = _carpet(analysis.series, mask, analysis.zooms) if mask.any() else (np.zeros((1, n)), 0)
    fd = np.asarray(result.extras.get("fd", []), dtype=float)
    dvars = np.asarray(result.extras.get("dvars_std", []), dtype=float)

    fig = Figure(figsize=(14, 11), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(5, 1, height_ratios=[1.55, 1.55, 0.7, 0.7, 2.6], hspace=0.12,
                            left=0.07, right=0.97, top=0.92, bottom=0.05)
    fig.suptitle(_title(result, name), fontsize=11)
    top = float(np.percentile(mean[mask], 99.5)) if mask.any() else float(mean.max() or 1.0)
    _montage(fig, grid[0].subgridspec(1, N_SLICES, wspace=0.02), mean, mask, slices, "gray", top, "mean EPI")
    std_top = float(np.percentile(std[mask], 99)) if mask.any() else float(std.max() or 1.0)
    _montage(fig, grid[1].subgridspec(1, N_SLICES, wspace=0.02), std, mask, slices, "inferno", std_top,
             "temporal std")

    ax_fd = fig.add_subplot(grid[2])
    _trace(ax_fd, fd, "#1565c0", "FD (mm)", threshold=FD_THRESHOLD)
    ax_dv = fig.add_subplot(grid[3], sharex=ax_fd)
    _trace(ax_dv, dvars, "#2e7d32", "DVARS (std)", threshold=None)
    ax_dv.axhline(1.0, color="#616161", linestyle=":", linewidth=0.8)
    ax_c = fig.add_subplot(grid[4], sharex=ax_fd)
    ax_c.imshow(carpet, aspect="auto", cmap="gray", vmin=-2.0, vmax=2.0, interpolation="nearest",
                extent=(-0.5, n - 0.5, carpet.shape[0], 0))
    if 0 < split < carpet.shape[0]:
        ax_c.axhline(split, color="#ffb300", linewidth=0.8)
        box = {"facecolor": "black", "alpha": 0.6, "edgecolor": "none", "pad": 1.5}
        ax_c.text(0.5, split / 2, f"outer {RIM_MM:.0f} mm of the brain", color="#ffb300", fontsize=7,
                  va="center", bbox=box)
        ax_c.text(0.5, (split + carpet.shape[0]) / 2, "deeper", color="#ffb300", fontsize=7, va="center", bbox=box)
    ax_fd.set_xlim(-0.5, n - 0.5)
    ax_c.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_c.set_yticks([])
    ax_c.set_ylabel("brain voxels (z-scored)", fontsize=8)
    dummies = int(result.extras.get("dummy_trs", 0))
    note = f" (after {dummies} dummy volume{'s' if dummies != 1 else ''})" if dummies else ""
    ax_c.set_xlabel(f"volume{note}", fontsize=8)
    ax_c.tick_params(labelsize=7)

    return save_figure_atomic(fig, out_png)
