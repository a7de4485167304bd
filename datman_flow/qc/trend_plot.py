"""A QC trend figure: one small panel per metric, the value over scan date, scanner software
upgrades as dashed vertical lines labelled with the new version, outliers ringed in red and
MRIQC's typical range shaded. Pure: plain data in; out, a full-size PNG (written atomically,
with the mode the umask gives), small PNG bytes for an inline view, and a description of what
was drawn read back from the figure's artists.

A figure whose data did not change is not drawn again: the PNG records a digest of its chart
(and of DRAWING, bumped when the drawing changes), and an unchanged one is read back instead.
matplotlib and Pillow are imported when a figure is drawn, not when this module is imported.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datman_flow.atomic import atomic_path
from datman_flow.qc.kinds import Bounds, usual_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL.Image import Image

DRAWING = "trend-plot 1"  # part of every chart's digest: bump it when the drawing changes
DIGEST_KEY = "datman-flow chart"  # the PNG text chunk holding the digest

COLUMNS = 3
FULL_DPI = 100
POINT = "#3b6ea8"
OUTLIER = "#d62728"
UPGRADE = "#7b3fa0"
BAND = "#2ca02c"
GID_UPGRADE, GID_LABEL, GID_OUTLIER, GID_BAND = "upgrade", "upgrade-label", "outlier", "typical-range"


@dataclass(frozen=True)
class TrendPanel:
    """One metric's values over time; ``flagged[i]`` rings point i in red."""

    metric: str
    dates: tuple[date, ...]
    values: tuple[float, ...]
    flagged: tuple[bool, ...]
    band: Bounds | None = None  # MRIQC's typical range (open bounds None), None when none is known


@dataclass(frozen=True)
class Upgrade:
    when: date  # the first session with the new software
    version: str


@dataclass(frozen=True)
class TrendChart:
    title: str
    panels: tuple[TrendPanel, ...]
    upgrades: tuple[Upgrade, ...] = ()


@dataclass(frozen=True)
class DrawnTrend:
    """What a figure shows, read back from its artists (for tests and summaries)."""

    panels: tuple[str, ...]  # the metric of each panel, in order
    upgrade_lines: tuple[tuple[str, date], ...]  # (metric, x) of every upgrade line
    upgrade_labels: tuple[str, ...]  # the version labels written beside the lines
    outliers: tuple[tuple[str, date, float], ...]  # (metric, x, y) of every red ring
    bands: tuple[tuple[str, float, float], ...]  # (metric, low, high) of every shaded range, as drawn


@dataclass(frozen=True)
class RenderedTrend:
    image: Image  # the full-size figure (RGB)
    drawn: DrawnTrend | None  # None: the PNG was up to date, read back rather than drawn


def _as_date(x: object) -> date:
    if isinstance(x, datetime):
        return x.date()
    if isinstance(x, date):
        return x
    from matplotlib import dates as mdates

    return mdates.num2date(float(x)).date()  # type: ignore[arg-type]


def _limits(values: Sequence[float], band: Bounds | None) -> tuple[float, float] | None:
    """y limits around the finite values, stretched to a band bound that lies near them."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    span = hi - lo or abs(hi) * 0.1 or 1.0
    if hi == lo:  # a constant: centred in a range of 10 % of its value
        lo, hi = lo - span / 2, hi + span / 2
    for bound in band or ():
        if bound is not None and lo - span <= bound <= hi + span:
            lo, hi = min(lo, bound), max(hi, bound)
    pad = (hi - lo or span) * 0.08
    return lo - pad, hi + pad


def _panel(ax, panel: TrendPanel, upgrades: Sequence[Upgrade], label_upgrades: bool) -> None:
    from matplotlib import dates as mdates

    ax.set_gid(panel.metric)
    range_text = usual_text(panel.band) if panel.band else ""
    ax.set_title(panel.metric + (f"   (typical {range_text})" if range_text else ""), fontsize=9, loc="left")
    if panel.dates:
        ax.plot(panel.dates, panel.values, color=POINT, marker="o", markersize=3.5, linewidth=0.8)
        ringed = [(d, v) for d, v, f in zip(panel.dates, panel.values, panel.flagged) if f and math.isfinite(v)]
        if ringed:
            ax.scatter([d for d, _ in ringed], [v for _, v in ringed], s=110, facecolors="none",
                       edgecolors=OUTLIER, linewidths=1.6, zorder=5, gid=GID_OUTLIER)
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", color="#888888", transform=ax.transAxes)
    limits = _limits(panel.values, panel.band)
    if limits:
        ax.set_ylim(*limits)
    if panel.band and limits and (panel.band[0] is not None or panel.band[1] is not None):
        low = limits[0] if panel.band[0] is None else panel.band[0]
        high = limits[1] if panel.band[1] is None else panel.band[1]
        ax.axhspan(low, high, color=BAND, alpha=0.13, zorder=0, gid=GID_BAND, linewidth=0)
        ax.set_ylim(*limits)
    first, last = (min(panel.dates), max(panel.dates)) if panel.dates else (None, None)
    for upgrade in upgrades:
        if first is None or not first <= upgrade.when <= last:
            continue
        ax.axvline(upgrade.when, color=UPGRADE, linestyle="--", linewidth=1.2, gid=GID_UPGRADE)
        if label_upgrades:
            ax.text(upgrade.when, 0.97, f"{upgrade.version} ", rotation=90, ha="right", va="top", fontsize=7,
                    color=UPGRADE, transform=ax.get_xaxis_transform(), gid=GID_LABEL, zorder=6,
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.0})
    locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.tick_params(labelsize=8)
    ax.xaxis.get_offset_text().set_fontsize(8)
    ax.grid(True, color="#e4e4e4", linewidth=0.6)


def _legend(fig: Figure, chart: TrendChart) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=POINT, marker="o", markersize=4, linewidth=0.8, label="one series")]
    if any(any(p.flagged) for p in chart.panels):
        handles.append(Line2D([], [], color=OUTLIER, marker="o", markersize=9, markerfacecolor="none",
                              linestyle="none", label="outlier (qc_flags)"))
    if chart.upgrades:
        handles.append(Line2D([], [], color=UPGRADE, linestyle="--", label="scanner software upgrade"))
    if any(p.band for p in chart.panels):
        handles.append(Patch(color=BAND, alpha=0.25, label="MRIQC typical range"))
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8, frameon=False)


def trend_figure(chart: TrendChart) -> Figure:
    """The chart as a matplotlib Figure (Agg canvas), one panel per metric, COLUMNS per row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(len(chart.panels), 1)
    cols, rows = min(COLUMNS, n), math.ceil(n / COLUMNS)
    fig = Figure(figsize=(4.3 * cols + 0.4, 2.6 * rows + 0.9), dpi=FULL_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    top = 1.0 - 0.75 / (2.6 * rows + 0.9)
    grid = fig.add_gridspec(rows, cols, left=0.06, right=0.98, top=top, bottom=0.5 / (2.6 * rows + 0.9) + 0.02,
                            hspace=0.5, wspace=0.22)
    for i, panel in enumerate(chart.panels):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        _panel(ax, panel, chart.upgrades, label_upgrades=i < cols)
        if i // cols == rows - 1 or i + cols >= len(chart.panels):
            ax.set_xlabel("scan date", fontsize=8)
    fig.suptitle(chart.title, x=0.01, y=0.995, ha="left", va="top", fontsize=11, weight="bold")
    _legend(fig, chart)
    return fig


def describe(fig: Figure) -> DrawnTrend:
    """What `trend_figure` drew: panels, upgrade lines and labels, red rings and shaded ranges."""
    panels, lines, labels, rings, bands = [], [], [], [], []
    for ax in fig.axes:
        metric = str(ax.get_gid())
        panels.append(metric)
        lines += [(metric, _as_date(line.get_xdata()[0])) for line in ax.lines if line.get_gid() == GID_UPGRADE]
        labels += [text.get_text().strip() for text in ax.texts if text.get_gid() == GID_LABEL]
        for collection in ax.collections:
            if collection.get_gid() == GID_OUTLIER:
                rings += [(metric, _as_date(x), float(y)) for x, y in collection.get_offsets()]
        for patch in ax.patches:
            if patch.get_gid() == GID_BAND:
                ys = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 1]
                bands.append((metric, float(ys.min()), float(ys.max())))
    return DrawnTrend(tuple(panels), tuple(lines), tuple(labels), tuple(rings), tuple(bands))


def chart_digest(chart: TrendChart) -> str:
    return hashlib.sha256(f"{DRAWING}\n{chart!r}".encode()).hexdigest()[:32]


def _recorded(out_png: Path, digest: str) -> Image | None:
    """The PNG at `out_png` if it records `digest` (it shows this very chart), else None."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(out_png) as image:
            if getattr(image, "text", {}).get(DIGEST_KEY) != digest:
                return None
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError):  # absent, truncated or not a PNG: draw it again
        return None


def render_trend(chart: TrendChart, out_png: Path) -> RenderedTrend:
    """The chart's full-size PNG at `out_png`: drawn and written atomically, or, when the PNG
    there already shows this chart, read back."""
    from PIL import Image as PILImage
    from PIL.PngImagePlugin import PngInfo

    digest = chart_digest(chart)
    recorded = _recorded(out_png, digest)
    if recorded is not None:
        return RenderedTrend(recorded, None)
    fig = trend_figure(chart)
    fig.canvas.draw()
    image = PILImage.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
    info = PngInfo()
    info.add_text(DIGEST_KEY, digest)
    with atomic_path(Path(out_png), suffix=".png") as tmp:
        image.save(tmp, format="png", pnginfo=info)
    return RenderedTrend(image, describe(fig))


def _palette() -> Image:
    """The small PNGs' colours: the figure's own colours and their blends with the white and
    the shaded background (so a red ring stays red), and a grey ramp for text and axes."""
    from PIL import Image as PILImage

    def rgb(code: str) -> tuple[int, ...]:
        return tuple(int(code[i:i + 2], 16) for i in (1, 3, 5))

    white = (255, 255, 255)
    shaded = tuple(round(255 + (c - 255) * 0.13) for c in rgb(BAND))
    colours = [tuple(round(b + (c - b) * t) for c, b in zip(rgb(code), ground))
               for ground in (white, shaded) for code in (POINT, OUTLIER, UPGRADE, BAND)
               for t in (0.15, 0.3, 0.5, 0.7, 0.85, 1.0)]
    colours += [(v, v, v) for v in range(0, 256, 11)] + [white, shaded]
    palette = PILImage.new("P", (1, 1))
    flat = [v for colour in colours for v in colour]
    palette.putpalette(flat + [0] * (768 - len(flat)))
    return palette


def small_png(image: Image, scale: float) -> bytes:
    """A small copy of a rendered figure: `scale` times its size, in the figure's palette."""
    from PIL import Image as PILImage

    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image.resize(size, PILImage.Resampling.LANCZOS).quantize(palette=_palette(),
                                                                      dither=PILImage.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="png", optimize=True)
    return out.getvalue()
