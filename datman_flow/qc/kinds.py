"""The QC kinds (anat, fmri, dwi) in one table, and the usual ranges of their key metrics.

:data:`QC_KINDS` maps each kind to a :class:`QCKindSpec`: its BIDS modality, the entries that
measure a series and draw its picture, the key metrics in display order and the usual range of
some metrics (:class:`UsualRange`). :func:`outside_usual` / :func:`flag` say whether a value is
outside its usual range on the bad side, as the pictures (and any UI) show it in red.

Importing this module is cheap: the entries import numpy, scipy, nibabel and matplotlib only
when called, so configuration code can import the table. Everything here is immutable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datman_flow.qc.result import QCResult
    from datman_flow.qc.settings import QcSettings

QCKind = Literal["anat", "fmri", "dwi"]
Better = Literal["higher", "lower", "in range"]
Bounds = tuple[float | None, float | None]

AnalyseEntry = Callable[[Path, "QcSettings"], "tuple[QCResult, object | None]"]
"""``(nifti, settings) -> (result, reuse)``: the metrics, and what the picture can reuse (or None)."""
PictureEntry = Callable[[Path, "QCResult", "object | None", Path], Path]
"""``(nifti, result, reuse, out_png) -> out_png``: draws the picture, reusing ``reuse`` if it can."""


@dataclass(frozen=True)
class UsualRange:
    """Where most good series fall for one metric; ``None`` bounds are open. ``better`` says
    which side is bad: a value beyond a bound on the ``better`` side is no problem."""

    metric: str
    label: str
    bounds: Bounds
    better: Better
    conventions: tuple[str, ...] = ()  # the MRIQC conventions whose values the bounds describe; () = all

    def holds_for(self, convention: str | None) -> bool:
        """Whether the bounds describe values measured under ``convention`` (None: unknown, as
        for a caller that does not say; the range is then applied)."""
        return not self.conventions or convention is None or convention in self.conventions


@dataclass(frozen=True)
class QCKindSpec:
    """One QC kind: its name, BIDS modality (suffix), measuring and picture entries, key metrics
    (display order) and the usual ranges known for some metrics (display order)."""

    name: QCKind
    modality: str
    analyse: AnalyseEntry
    picture: PictureEntry
    key_metrics: tuple[str, ...]
    ranges: tuple[UsualRange, ...]

    def usual_range(self, metric: str, convention: str | None = None) -> UsualRange | None:
        """The usual range of ``metric`` for values measured under ``convention`` (qc/settings.py),
        or None when none is known."""
        return next((r for r in self.ranges if r.metric == metric and r.holds_for(convention)), None)


def outside_usual(value: float, bounds: Bounds, better: Better) -> bool:
    """Outside the usual range on the bad side (a CNR above the usual range is no problem);
    a value that is not finite is always flagged."""
    lo, hi = bounds
    too_low = lo is not None and value < lo and better != "lower"
    too_high = hi is not None and value > hi and better != "higher"
    return not math.isfinite(value) or too_low or too_high


def flag(kind: QCKind, metric: str, value: float, convention: str | None = None) -> bool:
    """Whether ``value`` of ``metric`` (measured under ``convention``) is outside its usual range
    for ``kind`` (False when the metric has no usual range)."""
    usual = qc_kind(kind).usual_range(metric, convention)
    return usual is not None and outside_usual(float(value), usual.bounds, usual.better)


@dataclass(frozen=True)
class RangeFlag:
    """One metric outside its usual range on the bad side (what the QC picture draws in red)."""

    metric: str
    value: float
    usual: UsualRange

    def as_json(self) -> dict[str, object]:
        """As written in the MRIQC-format JSON (`datman_flags`) and printed by `datman-flow qc`."""
        low, high = self.usual.bounds
        return {"metric": self.metric, "value": self.value, "basis": "typical range", "low": low, "high": high,
                "better": self.usual.better}


def range_flags(kind: QCKind, metrics: Mapping[str, float], convention: str | None = None) -> list[RangeFlag]:
    """Every metric of ``metrics`` (measured under ``convention``) outside its usual range for
    ``kind`` (:func:`flag`), in the order of the kind's ranges."""
    return [RangeFlag(r.metric, float(metrics[r.metric]), r) for r in usual_ranges(kind, convention)
            if r.metric in metrics and outside_usual(float(metrics[r.metric]), r.bounds, r.better)]


def usual_ranges(kind: QCKind, convention: str | None = None) -> tuple[UsualRange, ...]:
    """The usual ranges of ``kind`` that describe values measured under ``convention``."""
    return tuple(r for r in qc_kind(kind).ranges if r.holds_for(convention))


def usual_text(bounds: Bounds) -> str:
    """A range as an operator reads it: '1.5 - 5', '>= 8', '<= 0.5' or '' when open."""
    lo, hi = bounds
    if lo is not None and hi is not None:
        return f"{lo:g} - {hi:g}"
    return f">= {lo:g}" if lo is not None else (f"<= {hi:g}" if hi is not None else "")


# ---- measuring and picture entries (lazy imports) -------------------------------------------


def _analyse_anat(nifti: Path, settings: QcSettings) -> tuple[QCResult, object | None]:
    from datman_flow.qc.anat import anat_analysis

    analysis = anat_analysis(nifti, settings)
    return analysis.result, analysis


def _analyse_fmri(nifti: Path, settings: QcSettings) -> tuple[QCResult, object | None]:
    from datman_flow.qc.fmri import fmri_analysis

    analysis = fmri_analysis(nifti, settings)
    return analysis.result, analysis


def _analyse_dwi(nifti: Path, settings: QcSettings) -> tuple[QCResult, object | None]:
    from datman_flow.qc.dwi import dwi_metrics
    from datman_flow.qc.measure import companion

    bval, bvec = companion(nifti, ".bval"), companion(nifti, ".bvec")
    if not bval.exists() or not bvec.exists():
        raise FileNotFoundError(f"diffusion series without {bval.name} / {bvec.name}")
    return dwi_metrics(nifti, bval, bvec), None


def _picture_anat(nifti: Path, result: QCResult, reuse: object | None, out_png: Path) -> Path:
    """``reuse``: the AnatAnalysis (or its brain mask); without it the picture finds a quick one."""
    import numpy as np

    from datman_flow.qc.anat import AnatAnalysis
    from datman_flow.qc.anat_picture import anat_picture

    brain = reuse.segmentation.brain if isinstance(reuse, AnatAnalysis) else reuse
    return anat_picture(nifti, brain if isinstance(brain, np.ndarray) else None, out_png, result.metrics,
                        result.convention or None)


def _picture_fmri(nifti: Path, result: QCResult, reuse: object | None, out_png: Path) -> Path:
    """``reuse``: the FmriAnalysis; without it the resampling (not the realignment) is redone."""
    from datman_flow.qc.fmri import FmriAnalysis, reanalyse
    from datman_flow.qc.fmri_picture import fmri_picture
    from datman_flow.qc.measure import companion

    analysis = reuse if isinstance(reuse, FmriAnalysis) else reanalyse(nifti, result)
    return fmri_picture(analysis, out_png, name=companion(nifti, "").name)


def _picture_dwi(nifti: Path, result: QCResult, reuse: object | None, out_png: Path) -> Path:
    from datman_flow.qc.dwi_picture import dwi_picture

    return dwi_picture(nifti, result, out_png)


# ---- the table -----------------------------------------------------------------------------

# Where most good 3T T1w fall (MRIQC's usual values), in the order the picture lists them. SNR,
# CNR and CJV rest on the summary statistics, which MRIQC 24 weights by the partial-volume maps:
# their values move by -15 to -46 % (SNR, CNR) and +13 to +76 % (CJV) from 22.x's depending on the
# resolution (docs/metrics_anat.md), and no typical 24.x values are published; so these three
# ranges describe values measured under mriqc22 only (under mriqc24 the site history judges them).
_MRIQC22_ONLY = ("mriqc22",)
_ANAT_RANGES = (
    UsualRange("snr_total", "SNR", (8.0, None), "higher", _MRIQC22_ONLY),
    UsualRange("cnr", "CNR", (1.5, 5.0), "higher", _MRIQC22_ONLY),
    UsualRange("cjv", "CJV", (0.25, 0.65), "lower", _MRIQC22_ONLY),
    UsualRange("efc", "EFC", (0.4, 0.7), "lower"),
    UsualRange("fber", "FBER", (None, None), "higher"),
    UsualRange("wm2max", "WM2MAX", (0.5, 0.85), "in range"),
    UsualRange("fwhm_avg", "FWHM (vox)", (None, 5.0), "lower"),
    UsualRange("qi_1", "QI1", (None, 0.01), "lower"),
    UsualRange("inu_range", "INU range", (None, 0.5), "lower"),
    UsualRange("icvs_csf", "ICV CSF", (0.1, 0.6), "in range"),
    UsualRange("icvs_gm", "ICV GM", (0.1, 0.6), "in range"),
    UsualRange("icvs_wm", "ICV WM", (0.1, 0.6), "in range"),
)

# Only what docs/metrics_fmri.md states as MRIQC's typical 3T ranges (tSNR 20-120, fd_mean < 1 mm,
# dvars_std 0.8-2). The other BOLD metrics have no usual range here (none is documented; the
# bounds tests/test_qc_fmri.py asserts are test tolerances, not operator thresholds).
_FMRI_RANGES = (
    UsualRange("tsnr", "tSNR", (20.0, 120.0), "higher"),
    UsualRange("fd_mean", "FD mean (mm)", (None, 1.0), "lower"),
    UsualRange("dvars_std", "DVARS std", (0.8, 2.0), "in range"),
)

# No usual ranges for diffusion: docs/metrics_dwi.md states none (snr_b0 depends on the noise
# method and tsnr_b{shell} on the protocol: compare within a protocol over time instead).
_DWI_RANGES: tuple[UsualRange, ...] = ()

QC_KINDS: Mapping[QCKind, QCKindSpec] = MappingProxyType({
    "anat": QCKindSpec(
        name="anat", modality="T1w", analyse=_analyse_anat, picture=_picture_anat,
        key_metrics=("snr_total", "cnr", "cjv", "efc", "fber", "wm2max", "fwhm_avg", "icvs_csf", "icvs_gm",
                     "icvs_wm"),
        ranges=_ANAT_RANGES),
    "fmri": QCKindSpec(
        name="fmri", modality="bold", analyse=_analyse_fmri, picture=_picture_fmri,
        key_metrics=("tsnr", "fd_mean", "fd_perc", "dvars_std", "gsr_x", "gsr_y", "aor", "aqi", "dummy_trs"),
        ranges=_FMRI_RANGES),
    "dwi": QCKindSpec(
        name="dwi", modality="dwi", analyse=_analyse_dwi, picture=_picture_dwi,
        key_metrics=("snr_b0", "n_b0", "n_directions", "dropout_slices", "spikes", "fd_mean"),
        ranges=_DWI_RANGES),
})
"""Every QC kind, in the order anat, fmri, dwi."""


def qc_kind(kind: str) -> QCKindSpec:
    """The spec of ``kind``; ValueError naming the known kinds for anything else."""
    try:
        return QC_KINDS[kind]  # type: ignore[index]
    except KeyError:
        names = list(QC_KINDS)
        raise ValueError(f"unknown QC type {kind!r}: {', '.join(names[:-1])} or {names[-1]}") from None
