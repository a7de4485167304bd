"""One PNG per diffusion series: axial slices of the mean b=0 and the slice-by-volume map of
the dropout test (modified z-scores) with dropouts and spikes marked, key metrics in the title.
matplotlib's object API only (no pyplot state); the file is written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from datman_flow.atomic import save_figure_atomic
from datman_flow.qc.dwi import load_dwi
from datman_flow.qc.result import QCResult

N_SLICES = 5
Z_LIMIT = 6.0  # colour range of the z-score map


def _title(result: QCResult) -> str:
    m, x = result.metrics, result.extras
    shells = ", ".join(f"b{s['bvalue']}x{s['n_volumes']}" for s in x.get("shells", []))
    parts = [f"b0 x{int(m.get('n_b0', 0))}, {shells}", f"{int(m.get('n_directions', 0))} directions"]
    for key, label, fmt in (("snr_b0", "SNR b0", ".1f"), ("dropout_slices", "dropouts", ".0f"),
                            ("spikes", "spikes", ".0f"), ("fd_mean", "FD mean", ".2f"), ("efc", "EFC", ".2f")):
        if key in m and np.isfinite(m[key]):
            parts.append(f"{label} {m[key]:{fmt}}" + (" mm" if key == "fd_mean" else ""))
    return " | ".join(parts)


def _z_matrix(result: QCResult) -> np.ndarray:
    rows = result.extras.get("slice_z", [])
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def dwi_picture(nifti, result: QCResult, out_png: Path) -> Path:
    """Draw the picture of one diffusion series to ``out_png`` (replaced atomically)."""
    out_png = Path(out_png)
    data, _ = load_dwi(nifti)
    b0 = [int(v) for v in result.extras.get("b0_volumes", [])] or [0]
    mean_b0 = data[..., b0].mean(axis=3)
    del data
    signal = mean_b0 > np.percentile(mean_b0, 60)
    ks = np.flatnonzero(signal.sum(axis=(0, 1)) > 0.2 * signal.sum(axis=(0, 1)).max())
    ks = ks if ks.size else np.arange(mean_b0.shape[2])
    slices = np.linspace(ks[0], ks[-1], N_SLICES + 2)[1:-1].round().astype(int)
    vmax = float(np.percentile(mean_b0[signal], 99.5)) if signal.any() else float(mean_b0.max() or 1.0)

    fig = Figure(figsize=(13, 7.5), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, N_SLICES, height_ratios=(1.0, 1.25), hspace=0.12, wspace=0.04,
                            top=0.93, bottom=0.09, left=0.06, right=0.97)
    for col, k in enumerate(slices):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(mean_b0[:, :, k].T, origin="lower", cmap="gray", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.03, 0.04, f"slice {k}", color="white", fontsize=8, transform=ax.transAxes)
        if col == 0:
            ax.set_ylabel("mean b=0", fontsize=9)

    ax = fig.add_subplot(grid[1, :])
    z = _z_matrix(result)
    if z.size:
        shown = np.ma.masked_invalid(z.T)
        cmap = colormaps["RdBu"].with_extremes(bad="#d0d0d0")
        image = ax.imshow(shown, origin="lower", aspect="auto", cmap=cmap, vmin=-Z_LIMIT, vmax=Z_LIMIT,
                          interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="modified z (slice / neighbours)")
        drops = np.asarray(result.extras.get("dropouts", []), dtype=float).reshape(-1, 3)
        spikes = np.asarray(result.extras.get("spikes", []), dtype=float).reshape(-1, 3)
        ax.scatter(drops[:, 0], drops[:, 1], s=60, facecolors="none", edgecolors="black", linewidths=1.5,
                   label=f"dropout (z < {result.extras.get('dropout_threshold', -3.5)})")
        ax.scatter(spikes[:, 0], spikes[:, 1], s=50, marker="x", color="#ff9800",
                   label=f"background spike (z > {result.extras.get('spike_threshold', 6.0)})")
        shells = result.extras.get("shell_of_volume", [])
        ax.set_xticks(range(len(shells)))
        ax.set_xticklabels([f"{v}\nb{b}" for v, b in enumerate(shells)], fontsize=6)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    ax.set_xlabel("volume (b-value); grey: not tested (shell < 5 volumes or small slice)", fontsize=9)
    ax.set_ylabel("slice", fontsize=9)
    fig.suptitle(_title(result), fontsize=10)

    save_figure_atomic(fig, out_png)
    return out_png
