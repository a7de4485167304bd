"""The QC trends of every configured study: per site and QC tag (participants and phantoms
apart), a figure of the key metrics over scan date written to <data>/trends/, a small copy of
each shown inline, the latest values and numbers for Dagster's Plots tab."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datman_flow.config import LabConfig
from datman_flow.layout import DataLayout
from datman_flow.pipeline.trend_data import (
    LatestValues,
    TrendGroup,
    group_points,
    latest_values,
    qc_tags,
    sessions_plotted,
    site_upgrades,
    trend_chart,
    trend_metric_names,
)
from datman_flow.pipeline.trend_summary import (
    InlineFigure,
    figures_markdown,
    fit_inline,
    latest_markdown,
    plot_numbers,
)
from datman_flow.qc.trend_plot import DrawnTrend, render_trend, small_png
from datman_flow.store.trend_queries import MetricPoint, metric_history

INLINE_SCALE = 0.48  # the small figures: a six-panel figure of 1330 x 610 px -> 640 x 290 px
MIN_INLINE_SCALE = 0.2


@dataclass(frozen=True)
class GroupTrend:
    group: TrendGroup
    png: Path
    drawn: DrawnTrend | None  # what was drawn; None when the PNG already showed these data
    sessions: int
    latest: tuple[LatestValues, ...]


@dataclass(frozen=True)
class Trends:
    folder: Path  # <data>/trends
    groups: tuple[GroupTrend, ...]
    inline: dict[TrendGroup, str]  # group -> data URI of its small figure (those shown inline)
    notes: tuple[str, ...]
    sessions: int  # distinct sessions plotted

    @property
    def latest(self) -> list[LatestValues]:
        return [row for g in self.groups for row in g.latest]

    def warnings(self) -> list[str]:
        """What was left out or shrunk, for the run's log."""
        return [f"QC trends: {note}" for note in self.notes]

    def inline_chars(self) -> int:
        return sum(len(uri) for uri in self.inline.values())

    def metadata(self) -> dict[str, object]:
        numbers, number_notes = plot_numbers(self.latest)
        figures = [InlineFigure(g.group, g.png, self.inline.get(g.group)) for g in self.groups]
        out: dict[str, object] = {
            "latest_values": latest_markdown(self.latest),
            "figures": figures_markdown(figures, [*self.notes, *number_notes]),
            "figure_count": len(self.groups),
            "figures_redrawn": sum(1 for g in self.groups if g.drawn is not None),
            "sessions": self.sessions,
            "inline_kb": round(self.inline_chars() / 1000, 1),
            "trends_dir": self.folder,
        }
        out.update(numbers)
        return out


def same_convention(group: TrendGroup, points: list[MetricPoint],
                    convention: str | None) -> tuple[list[MetricPoint], list[str]]:
    """A T1w group's points measured under the study's MRIQC convention, and a note on the
    sessions left out (the conventions' values differ by tens of percent: one axis would show a
    step that is no change in the images). BOLD and DWI metrics do not depend on it."""
    if group.kind != "anat" or convention is None:
        return points, []
    kept = [p for p in points if p.convention == convention]
    other = {p.session for p in points} - {p.session for p in kept}
    if not other:
        return points, []
    return kept, [f"{group.title}: {len(other)} session(s) measured under another MRIQC convention than the "
                  f"study's {convention} left out; re-materialize their qc_metrics to plot them"]


def trends_step(config: LabConfig, layout: DataLayout) -> Trends:
    """Every configured study's trends, from the metric store; the figures written atomically."""
    store, studies = layout.metric_store, sorted(config.studies)
    tag_kinds = qc_tags(config)
    points = metric_history(store, studies, sorted(tag_kinds), trend_metric_names(set(tag_kinds.values())))
    upgrades = site_upgrades(points)
    groups, images, notes = [], {}, []
    by_group = group_points(points, tag_kinds)
    for group, mine in list(by_group.items()):
        if not group.safe():
            notes.append(f"{group.title!r}: left out, its study, site or tag cannot name a file")
            continue
        convention = config.studies[group.study].qc.convention if group.study in config.studies else None
        mine, note = same_convention(group, mine, convention)
        notes.extend(note)
        by_group[group] = mine
        chart = trend_chart(group, mine, upgrades.get((group.study, group.site), ()), convention)
        png = layout.trends / f"{group.name}.png"
        rendered = render_trend(chart, png)
        images[group] = rendered.image
        groups.append(GroupTrend(group, png, rendered.drawn, sessions_plotted(mine), latest_values(group, mine)))
    inline, inline_notes = fit_inline(list(images), lambda group, scale: small_png(images[group], scale),
                                      INLINE_SCALE, MIN_INLINE_SCALE)
    plotted = sessions_plotted(p for g in groups for p in by_group[g.group])
    return Trends(layout.trends, tuple(groups), inline, tuple(notes + inline_notes), plotted)
