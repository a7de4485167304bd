"""QC flags: each measured series' key metrics against the site's own history, and every metric
outside MRIQC's typical range (what the QC picture draws in red).

Site history: the same metric of the series of earlier sessions of the same study, site, tag and
scanner software (phantoms only with phantoms; store/qc_queries.py says what "earlier" is).
Robust z = (value - median) / (1.4826 x MAD); a metric is an outlier when |z| exceeds the
study's `qc_outliers.z` (3.5) on its bad side: below the median for a metric whose `better` is
"higher" (a high SNR is no problem), above it for "lower", either side for "in range" and for
metrics without a usual range. When every earlier value is the same (MAD 0), a value that differs
from it (beyond a relative 1e-9) has z = +/-inf. A series is compared once its history holds
`qc_outliers.min_history` (8) sessions; until then its check falls back on the typical ranges,
which are recorded for every series anyway.

Recorded per session: the flags (`qc_flags`) and one `qc_outliers` check row per measured series
(passed False for a site-history outlier, or a typical-range flag while the history is short;
NULL when neither could be evaluated: short history and no typical range for the kind).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datman_flow.config import QcOutliers
from datman_flow.layout import DataLayout
from datman_flow.pipeline import persist
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.qc.kinds import QCKind, qc_kind, range_flags, usual_ranges, usual_text
from datman_flow.store import CheckRow, HeaderParameterRow, MetricStore, QcFlagRow, SessionRow
from datman_flow.store.qc_queries import SOFTWARE_FIELD, HistoryKey, MetricHistory, metric_history

CHECK_NAME = "qc_outliers"
SITE_HISTORY, TYPICAL_RANGE = "site history", "typical range"
MAD_SCALE = 1.4826  # MAD x 1.4826 estimates the standard deviation of normal data
SAME_VALUE_TOLERANCE = 1e-9  # relative: with MAD 0, values closer than this to the median are not flagged


# ---- robust statistics ----------------------------------------------------------------------

@dataclass(frozen=True)
class RobustStats:
    median: float
    mad: float  # median absolute deviation from the median (unscaled)
    n: int  # values

    def z(self, value: float) -> float:
        """(value - median) / (1.4826 x MAD); with MAD 0: 0 for the median (within a relative
        1e-9), else +/-inf on the side of the difference."""
        difference = value - self.median
        if self.mad > 0:
            return difference / (MAD_SCALE * self.mad)
        if math.isclose(value, self.median, rel_tol=SAME_VALUE_TOLERANCE, abs_tol=0.0):
            return 0.0
        return math.copysign(math.inf, difference)

    def bounds(self, z_limit: float) -> tuple[float, float]:
        """median -/+ z_limit x 1.4826 x MAD: the values that are not outliers on either side."""
        half = z_limit * MAD_SCALE * self.mad
        return self.median - half, self.median + half


def robust_stats(values: Sequence[float]) -> RobustStats:
    """Median and MAD of `values` (ValueError when empty)."""
    if not values:
        raise ValueError("robust statistics of no values")
    median = statistics.median(values)
    return RobustStats(median, statistics.median(abs(v - median) for v in values), len(values))


def bad_sides(kind: QCKind, metric: str) -> tuple[bool, bool]:
    """(a low value is bad, a high value is bad): from the metric's usual range's `better`; both
    for "in range" and for a metric without a usual range."""
    usual = qc_kind(kind).usual_range(metric)
    better = usual.better if usual is not None else "in range"
    return better != "lower", better != "higher"


def is_outlier(z: float, z_limit: float, low_bad: bool, high_bad: bool) -> bool:
    return (z < -z_limit and low_bad) or (z > z_limit and high_bad)


# ---- one series ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class MeasuredSeries:
    """What the comparison needs of one measured series."""

    series_number: str
    tag: str
    kind: QCKind
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class SeriesOutliers:
    series_number: str
    tag: str
    kind: QCKind
    software: str  # the scanner software the history was matched on ('' when unknown)
    n_history: int  # earlier sessions compared with
    min_history: int
    site_flags: tuple[QcFlagRow, ...]  # outliers against the site's history (only when compared)
    range_flags: tuple[QcFlagRow, ...]  # outside MRIQC's typical range (always; never for a phantom)
    has_ranges: bool  # some measured metric has a typical range (never for a phantom)
    phantom: bool = False

    @property
    def compared(self) -> bool:
        return self.n_history >= self.min_history

    @property
    def flags(self) -> tuple[QcFlagRow, ...]:
        return self.site_flags + self.range_flags

    @property
    def failing(self) -> tuple[QcFlagRow, ...]:
        """The flags that fail the check: site outliers, or typical-range flags while the history is short."""
        return self.site_flags if self.compared else self.range_flags

    @property
    def passed(self) -> bool | None:
        if self.failing:
            return False
        return True if self.compared or self.has_ranges else None

    def detail(self) -> str:
        if self.failing:
            return "; ".join(flag_text(f, self.min_history) for f in self.failing)
        history = f"site history n={self.n_history}"
        if self.compared:
            return f"ok: key metrics within the {history} (software {self.software or 'unknown'})"
        if self.has_ranges:
            return f"ok: within typical ranges; {history} < {self.min_history} sessions"
        which = "phantoms (they are ranges of brains)" if self.phantom else self.kind
        return f"not evaluated: {history} < {self.min_history} sessions and no typical ranges for {which}"


def fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def flag_text(flag: QcFlagRow, min_history: int) -> str:
    """'tsnr 14.2: site median 55.1 (n=12), z -4.2' or 'tsnr 14.2: outside typical range 20 - 120 (...)'."""
    if flag.basis == SITE_HISTORY:
        z = "not a number" if flag.z is None else (f"{flag.z:.1f}" + (" (no spread)" if math.isinf(flag.z) else ""))
        return f"{flag.metric} {fmt(flag.value)}: site median {fmt(flag.median)} (n={flag.n_history}), z {z}"
    return (f"{flag.metric} {fmt(flag.value)}: outside typical range {usual_text((flag.low, flag.high))} "
            f"(site history n={flag.n_history} < {min_history})")


def site_flags(session: str, series: MeasuredSeries, history: MetricHistory, software: str,
               settings: QcOutliers) -> list[QcFlagRow]:
    """The key metrics of `series` that are outliers against `history` (each metric compared
    once `min_history` earlier sessions hold it)."""
    flags = []
    for metric in qc_kind(series.kind).key_metrics:
        earlier = history.values.get(metric, ())
        if metric not in series.metrics or history.metric_sessions.get(metric, 0) < settings.min_history:
            continue
        value, stats = float(series.metrics[metric]), robust_stats(earlier)
        z = stats.z(value) if math.isfinite(value) else None
        if z is not None and not is_outlier(z, settings.z, *bad_sides(series.kind, metric)):
            continue
        low, high = stats.bounds(settings.z)
        flags.append(QcFlagRow(session=session, series_number=series.series_number, tag=series.tag, metric=metric,
                               value=value, basis=SITE_HISTORY, low=low, high=high, median=stats.median, z=z,
                               n_history=history.metric_sessions[metric], software=software))
    return flags


def typical_flags(session: str, series: MeasuredSeries, n_history: int, software: str,
                  convention: str | None = None) -> list[QcFlagRow]:
    """The series' metrics outside the typical ranges that hold for its MRIQC ``convention``."""
    return [QcFlagRow(session=session, series_number=series.series_number, tag=series.tag, metric=f.metric,
                      value=f.value, basis=TYPICAL_RANGE, low=f.usual.bounds[0], high=f.usual.bounds[1],
                      n_history=n_history, software=software)
            for f in range_flags(series.kind, series.metrics, convention)]


def series_outliers(session: str, series: MeasuredSeries, history: MetricHistory, software: str,
                    settings: QcOutliers, phantom: bool = False, convention: str | None = None) -> SeriesOutliers:
    """A phantom is compared with earlier phantoms only, never with MRIQC's typical ranges (those
    describe brains: a gel sphere has no grey matter), so its check waits for a history. The
    typical ranges are those that hold for the MRIQC ``convention`` the series was measured under."""
    compared = history.sessions >= settings.min_history
    found = site_flags(session, series, history, software, settings) if compared else []
    ranged = not phantom and any(r.metric in series.metrics for r in usual_ranges(series.kind, convention))
    typical = () if phantom else tuple(typical_flags(session, series, history.sessions, software, convention))
    return SeriesOutliers(series.series_number, series.tag, series.kind, software, history.sessions,
                          settings.min_history, tuple(found), typical, ranged, phantom)


# ---- the session ------------------------------------------------------------------------------

def software_of(parameters: str) -> str:
    """The scanner software in a `header_parameters.parameters` JSON ('' when absent or unreadable),
    written as the store's query reads it (text as it is, other JSON values compact)."""
    try:
        value = json.loads(parameters).get(SOFTWARE_FIELD)
    except (ValueError, AttributeError):
        return ""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def series_software(store: MetricStore, session: str) -> dict[tuple[str, str], str]:
    """(series number, tag) -> scanner software, from the header check's rows of the session."""
    rows = store.read(HeaderParameterRow, session)
    return {(row.series_number, row.tag): software_of(row.parameters) for row in rows}


def session_history(store: MetricStore, target: SessionTarget,
                    keys: Sequence[HistoryKey]) -> dict[HistoryKey, MetricHistory]:
    """Each key's earlier values (sessions scanned before this one), from ONE query over the store."""
    own = store.read(SessionRow, target.label)
    sid = target.scan_id
    return metric_history(store, sid.study, sid.site, keys, phantom=sid.is_phantom, other_than=target.label,
                          scan_date=own[0].scan_date if own else "", insert_date=own[0].insert_date if own else "")


def check_rows(session: str, found: Sequence[SeriesOutliers]) -> list[CheckRow]:
    """One `qc_outliers` row per measured series (found = the flags that fail it)."""
    return [CheckRow(session=session, check_name=CHECK_NAME, tag=o.tag, passed=o.passed, expected=None,
                     found=len(o.failing), detail=o.detail(), series=(o.series_number,)) for o in found]


def outlier_step(target: SessionTarget, layout: DataLayout, measured: Sequence[MeasuredSeries]) -> list[SeriesOutliers]:
    """Compare every measured series of the session (the site's `qc_outliers` settings), record the
    flags and the check rows (the caller holds the session's lock: qc_step). One query to the
    store, whatever the number of series."""
    store, label, settings = layout.metric_store, target.label, target.site.qc_outliers
    software = series_software(store, label) if measured else {}
    # T1w metrics differ between conventions and engines; BOLD and DWI do not
    convention, engine = target.study.qc.convention, target.study.qc.anat_engine
    keys = [HistoryKey(m.tag, software.get((m.series_number, m.tag), ""), qc_kind(m.kind).key_metrics,
                       convention if m.kind == "anat" else None, engine if m.kind == "anat" else None)
            for m in measured]
    history = session_history(store, target, list(dict.fromkeys(keys))) if measured else {}
    phantom = target.scan_id.is_phantom
    found = [series_outliers(label, m, history[key], key.software, settings, phantom, convention)
             for m, key in zip(measured, keys)]
    persist.record_rows(layout, QcFlagRow, label, [f for o in found for f in o.flags])
    persist.record_checks(layout, label, CHECK_NAME, check_rows(label, found))
    return found
