"""QC trends as plain data: the store's metric history split per study, site, tag and
participants or phantoms, each group's chart (the panels, MRIQC's typical ranges, the site's
scanner software upgrades) and its latest values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType

from datman_flow.config import LabConfig
from datman_flow.qc.kinds import QC_KINDS, qc_kind
from datman_flow.qc.trend_plot import TrendChart, TrendPanel, Upgrade
from datman_flow.safe_paths import is_safe_component
from datman_flow.store.trend_queries import MetricPoint

# The key metrics a trend plots, per QC kind (the most telling of QC_KINDS[kind].key_metrics:
# the counts that only follow the protocol, such as n_b0 or dummy_trs, are left out).
TREND_METRICS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "anat": ("snr_total", "cnr", "cjv", "efc", "wm2max", "fwhm_avg"),
    "fmri": ("tsnr", "fd_mean", "dvars_std", "aqi", "gsr_x", "fd_perc"),
    "dwi": ("snr_b0", "fd_mean", "dropout_slices", "spikes"),
})


@dataclass(frozen=True, order=True)
class TrendGroup:
    """One figure: a study's site and tag, participants or phantoms."""

    study: str
    site: str
    tag: str
    phantom: bool
    kind: str  # anat | fmri | dwi, the tag's `qc:`

    @property
    def name(self) -> str:
        """The PNG's name: STUDY_SITE_TAG[_phantom]."""
        return f"{self.study}_{self.site}_{self.tag}" + ("_phantom" if self.phantom else "")

    @property
    def title(self) -> str:
        return f"{self.study} {self.site} {self.tag}" + (" phantom" if self.phantom else "")

    @property
    def key(self) -> str:
        """The prefix of its numbers in the metadata: STUDY/SITE/TAG[_phantom]."""
        return f"{self.study}/{self.site}/{self.tag}" + ("_phantom" if self.phantom else "")

    @property
    def metrics(self) -> tuple[str, ...]:
        return TREND_METRICS[self.kind]

    def safe(self) -> bool:
        """Its parts can name a file (they come from the store, written from XNAT's labels)."""
        return all(is_safe_component(part) for part in (self.study, self.site, self.tag))


@dataclass(frozen=True)
class LatestValues:
    """The key metrics of one series of a group's latest session."""

    group: TrendGroup
    session: str
    scan_date: date | None
    series_number: int | None
    software: str
    values: Mapping[str, float]  # metric -> value
    flagged: Mapping[str, str]  # metric -> the flags' bases, for the flagged metrics only


def qc_tags(config: LabConfig) -> dict[str, str]:
    """Tag -> QC kind, for the registry's tags whose `qc:` is a QC kind (not `ignore`)."""
    return {name: info.qc for name, info in config.tags.items() if info.qc in QC_KINDS}


def trend_metric_names(kinds: Iterable[str]) -> list[str]:
    return sorted({metric for kind in kinds for metric in TREND_METRICS[kind]})


def group_points(points: Iterable[MetricPoint], tag_kinds: Mapping[str, str]) -> dict[TrendGroup, list[MetricPoint]]:
    """The points per group (sorted groups; each group's points keep the store's order)."""
    groups: dict[TrendGroup, list[MetricPoint]] = {}
    for point in points:
        kind = tag_kinds.get(point.tag)
        if kind is None or point.metric not in TREND_METRICS[kind]:
            continue
        groups.setdefault(TrendGroup(point.study, point.site, point.tag, point.is_phantom, kind), []).append(point)
    return {group: groups[group] for group in sorted(groups)}


def site_upgrades(points: Iterable[MetricPoint]) -> dict[tuple[str, str], tuple[Upgrade, ...]]:
    """(study, site) -> each date its scanner software changed: the first measured session (by
    date) whose software differs from the one of the session before it, with the new version.
    Participants and phantoms together, every tag: the software is the scanner's. Sessions of
    unknown software or date are passed over."""
    sessions = sorted({(p.study, p.site, p.scan_date, p.session, p.software) for p in points
                       if p.scan_date is not None and p.software})
    found: dict[tuple[str, str], list[Upgrade]] = {}
    previous: dict[tuple[str, str], str] = {}
    for study, site, when, _, software in sessions:
        key = (study, site)
        if key in previous and software != previous[key]:
            found.setdefault(key, []).append(Upgrade(when, software))  # type: ignore[arg-type]
        previous[key] = software
    return {key: tuple(upgrades) for key, upgrades in found.items()}


def trend_chart(group: TrendGroup, points: Sequence[MetricPoint], upgrades: Sequence[Upgrade],
                convention: str | None = None) -> TrendChart:
    """One panel per key metric of the group's kind (dated points only), with its typical range
    as the study's MRIQC ``convention`` defines it."""
    spec = qc_kind(group.kind)
    panels = []
    for metric in group.metrics:
        mine = [p for p in points if p.metric == metric and p.scan_date is not None]
        usual = spec.usual_range(metric, convention)
        panels.append(TrendPanel(metric, tuple(p.scan_date for p in mine),  # type: ignore[misc]
                                 tuple(p.value for p in mine), tuple(bool(p.flagged) for p in mine),
                                 usual.bounds if usual else None))
    dates = [p.scan_date for p in points if p.scan_date is not None]
    sessions = len({p.session for p in points if p.scan_date is not None})
    span = f"{min(dates)} to {max(dates)}" if dates else "no dated session"
    title = f"{group.title}   {sessions} session{'s' * (sessions != 1)}, {span}"
    return TrendChart(title, tuple(panels), tuple(upgrades))


def latest_values(group: TrendGroup, points: Sequence[MetricPoint]) -> tuple[LatestValues, ...]:
    """One entry per series of the group's latest session (the last dated one, else the last one)."""
    if not points:
        return ()
    dated = [p for p in points if p.scan_date is not None]
    latest = (dated or list(points))[-1].session
    by_series: dict[int | None, list[MetricPoint]] = {}
    for point in points:
        if point.session == latest:
            by_series.setdefault(point.series_number, []).append(point)
    out = []
    for number in sorted(by_series, key=lambda n: (n is None, n or 0)):
        mine = by_series[number]
        out.append(LatestValues(group, latest, mine[0].scan_date, number, mine[0].software,
                                MappingProxyType({p.metric: p.value for p in mine}),
                                MappingProxyType({p.metric: p.flagged for p in mine if p.flagged})))
    return tuple(out)


def sessions_plotted(points: Iterable[MetricPoint]) -> int:
    return len({p.session for p in points if p.scan_date is not None})
