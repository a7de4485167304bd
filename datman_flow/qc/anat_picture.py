"""One PNG per T1w series for an operator: slices in three orientations with the brain outline,
and the key metrics beside them, flagged when outside MRIQC's usual range for 3T T1w (the ranges
of :data:`datman_flow.qc.kinds.QC_KINDS`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from datman_flow.atomic import save_figure_atomic
from datman_flow.qc.kinds import outside_usual, usual_ranges, usual_text

N_SLICES = 6
BACKGROUND = "#111111"
OUTLINE = "#ff8c1a"


def _positions(mask: np.ndarray, axis: int) -> list[int]:
    """Slice indices spread over the central 80 % of the mask's extent along ``axis``."""
    other = tuple(a for a in range(3) if a != axis)
    span = np.nonzero(mask.any(axis=other))[0]
    lo, hi = (int(span[0]), int(span[-1])) if span.size else (0, mask.shape[axis] - 1)
    return [int(round(v)) for v in np.linspace(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), N_SLICES)]


def _plane(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """A slice shown with superior / anterior up and the patient's right on the right."""
    return np.take(volume, index, axis=axis).T


def _draw_row(fig, grid, row, data, mask, zooms, axis, window) -> None:
    names = {0: "sagittal", 1: "coronal", 2: "axial"}
    shown = [a for a in range(3) if a != axis]
    aspect = float(zooms[shown[1]]) / float(zooms[shown[0]])
    for col, index in enumerate(_positions(mask if mask is not None and mask.any() else data > window[0], axis)):
        ax = fig.add_subplot(grid[row, col])
        ax.imshow(_plane(data, axis, index), cmap="gray", vmin=window[0], vmax=window[1], origin="lower",
                  aspect=aspect, interpolation="nearest")
        if mask is not None:
            plane = _plane(mask, axis, index).astype(np.float32)
            if plane.any():
                ax.contour(plane, levels=[0.5], colors=OUTLINE, linewidths=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_facecolor(BACKGROUND)
        if col == 0:
            ax.set_ylabel(names[axis], color="#bbbbbb", fontsize=9)
        ax.text(0.02, 0.02, str(index), color="#888888", fontsize=7, transform=ax.transAxes)


def _metrics_panel(ax, metrics: dict, ranges) -> None:
    ax.set_axis_off()
    ax.set_facecolor(BACKGROUND)
    y = 0.97
    ax.text(0.0, y, "metric", color="#888888", fontsize=8, transform=ax.transAxes, family="monospace")
    ax.text(1.0, y, "usual", color="#888888", fontsize=8, ha="right", transform=ax.transAxes, family="monospace")
    for usual in ranges:
        key, bounds = usual.metric, usual.bounds
        if key not in metrics:
            continue
        if key == "fber" and float(metrics[key]) == -1.0:
            bounds = (None, None)  # -1: the air outside the head is (nearly) all zero
        y -= 0.075
        value = float(metrics[key])
        bad = outside_usual(value, bounds, usual.better)
        ax.text(0.0, y, f"{usual.label:<10} {value:8.3g}", color="#ff5555" if bad else "#e6e6e6", fontsize=9,
                transform=ax.transAxes, family="monospace", weight="bold" if bad else "normal")
        ax.text(1.0, y, usual_text(bounds), color="#888888", fontsize=8, ha="right", transform=ax.transAxes,
                family="monospace")


def anat_picture(nifti, brain_mask: np.ndarray | None, out_png: Path, metrics: dict,
                 convention: str | None = None) -> Path:
    """Write the T1w QC picture to ``out_png`` (atomically) and return its path.

    ``brain_mask`` is in the closest-canonical orientation of the image (as ``anat_analysis``
    returns it); None computes a quick one. Metrics outside their usual range (the ranges that
    hold for the MRIQC ``convention`` they were measured under) are in red."""
    ranges = usual_ranges("anat", convention)  # the metrics listed beside the slices, with their usual range
    from datman_flow.qc.anat import load_t1w
    from datman_flow.qc.segment import quick_brain_mask

    data, zooms = load_t1w(nifti)
    np.clip(data, 0.0, None, out=data)
    if brain_mask is None:
        brain_mask = quick_brain_mask(data, zooms)
    mask = np.asarray(brain_mask, dtype=bool)
    if mask.shape != data.shape:
        raise ValueError(f"brain mask shape {mask.shape} differs from the image's {data.shape}")
    inside = data[mask] if mask.any() else data[data > 0]
    window = (0.0, 1.1 * float(np.percentile(inside, 99.0)) if inside.size else 1.0)

    fig = Figure(figsize=(15, 8.2), facecolor=BACKGROUND)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, N_SLICES + 2, left=0.02, right=0.99, top=0.9, bottom=0.02, wspace=0.02, hspace=0.04)
    for row, axis in enumerate((2, 1, 0)):
        _draw_row(fig, grid, row, data, mask, zooms, axis, window)
    _metrics_panel(fig.add_subplot(grid[:, N_SLICES:]), metrics, ranges)
    name = Path(str(nifti)).name if isinstance(nifti, (str, Path)) else "T1w"
    flagged = [r.label for r in ranges
               if r.metric in metrics and outside_usual(float(metrics[r.metric]), r.bounds, r.better)
               and not (r.metric == "fber" and float(metrics[r.metric]) == -1.0)]
    status = "all key metrics in their usual range" if not flagged else "outside usual range: " + ", ".join(flagged)
    fig.suptitle(f"{name}   {data.shape[0]}x{data.shape[1]}x{data.shape[2]}, "
                 f"{zooms[0]:.2g}x{zooms[1]:.2g}x{zooms[2]:.2g} mm   |   {status}",
                 color="#ff5555" if flagged else "#e6e6e6", fontsize=11, x=0.02, ha="left")
    note = "brain mask outlined; patient's right on the right; slice index bottom-left"
    if float(metrics.get("fber", 0.0)) == -1.0:
        note += ";  FBER -1: the air is (nearly) all zero (zero-filled or skull-stripped)"
    fig.text(0.02, 0.925, note, color="#888888", fontsize=8)
    return save_figure_atomic(fig, Path(out_png))
