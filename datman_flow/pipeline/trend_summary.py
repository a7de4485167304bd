"""What a person reads about the QC trends, as plain values: the figures inline (small PNGs as
data URIs, kept under a size budget), the latest values per study, site and tag with the
flagged metrics marked, and numbers that Dagster's Plots tab draws across materializations."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from datman_flow.pipeline.summary import Markdown, fmt, markdown_table
from datman_flow.pipeline.trend_data import TREND_METRICS, LatestValues, TrendGroup
from datman_flow.qc.thumbnail import INLINE_BUDGET
from datman_flow.qc.thumbnail import data_uri as png_data_uri  # the one place inline images are addressed

NUMBER_METRICS = 3  # the first N trend metrics of each group go out as numbers
MAX_NUMBERS = 120  # numbers in one materialization, at most
FLAG = "⚠"
NOTHING_YET = "no QC metrics recorded yet for the configured studies and QC tags"


@dataclass(frozen=True)
class InlineFigure:
    group: TrendGroup
    png: Path  # the full-size figure
    uri: str | None  # the small version, None when left out of the inline view


def fit_inline(groups: Sequence[TrendGroup], render: Callable[[TrendGroup, float], bytes], scale: float,
               min_scale: float, budget: int = INLINE_BUDGET) -> tuple[dict[TrendGroup, str], list[str]]:
    """Small figures (group -> data URI) whose URIs add up to at most `budget` characters, and
    notes of what was shrunk or left out. `render(group, scale)` makes a group's small PNG at
    `scale` of full size; the scale is `scale`, or smaller (not below `min_scale`) when the first
    figure, or then all of them, would not fit; the figures are then taken in order while they fit."""
    if not groups:
        return {}, []
    probe = png_data_uri(render(groups[0], scale))
    chosen = shrunk(scale, len(probe) * len(groups), budget, min_scale)
    uris = {group: probe if chosen == scale and i == 0 else png_data_uri(render(group, chosen))
            for i, group in enumerate(groups)}
    for _ in range(2):  # the probe can underestimate the others: shrink again, at most twice
        total = sum(len(uri) for uri in uris.values())
        if total <= budget or chosen <= min_scale:
            break
        chosen = shrunk(chosen, total, budget * 0.97, min_scale)
        uris = {group: png_data_uri(render(group, chosen)) for group in groups}
    notes = []
    if chosen < scale:
        notes.append(f"inline figures at {chosen:.0%} of full size (instead of {scale:.0%}) to stay under "
                     f"{budget // 1000} KB")
    kept, used = {}, 0
    for group in groups:
        if used + len(uris[group]) <= budget:
            kept[group] = uris[group]
            used += len(uris[group])
    left_out = [group.title for group in groups if group not in kept]
    if left_out:
        notes.append(f"{len(left_out)} figure(s) left out of the inline view to stay under {budget // 1000} KB "
                     f"(see their full-size PNG): {', '.join(left_out)}")
    return kept, notes


def shrunk(scale: float, size: int, budget: float, min_scale: float) -> float:
    """The scale at which images of `size` characters at `scale` would fill about 95 % of
    `budget`, within [min_scale, scale] (measured: these palette PNGs grow about as scale^1.5)."""
    if size <= budget:
        return scale
    return max(min_scale, scale * (0.95 * budget / size) ** (2 / 3))


def figures_markdown(figures: Sequence[InlineFigure], notes: Sequence[str]) -> Markdown:
    if not figures:
        return Markdown(NOTHING_YET)
    parts = [f"- {note}" for note in notes]
    for figure in figures:
        parts.append(f"#### {figure.group.title}")
        if figure.uri is not None:
            parts.append(f"![{figure.group.title}]({figure.uri})")
        parts.append(f"full size: `{figure.png}`")
    return Markdown("\n\n".join(parts))


def flagged_cell(value: float | None, basis: str | None) -> str:
    if value is None:
        return ""
    return f"**{fmt(value)}** {FLAG} ({basis})" if basis else fmt(value)


def latest_markdown(latest: Sequence[LatestValues]) -> Markdown:
    """Per study and QC kind, a table: one row per series of each site and tag's latest session,
    its key metrics, the flagged ones in bold with the flags' bases."""
    if not latest:
        return Markdown(NOTHING_YET)
    sections = []
    keys = sorted({(row.group.study, row.group.kind) for row in latest})
    for study, kind in keys:
        metrics = TREND_METRICS[kind]
        rows = [(row.group.site, row.group.tag + (" (phantom)" if row.group.phantom else ""), row.session,
                 row.scan_date or "", "" if row.series_number is None else row.series_number, row.software,
                 *(flagged_cell(row.values.get(m), row.flagged.get(m)) for m in metrics))
                for row in latest if (row.group.study, row.group.kind) == (study, kind)]
        table = markdown_table(["site", "tag", "latest session", "scan date", "series", "scanner software",
                                *metrics], rows)
        sections.append(f"**{study} · {kind}**\n\n{table}")
    sections.append(f"{FLAG}: flagged in qc_flags (site history or typical range)")
    return Markdown("\n\n".join(sections))


def plot_numbers(latest: Sequence[LatestValues]) -> tuple[dict[str, float], list[str]]:
    """`STUDY/SITE/TAG[_phantom]/metric` -> the latest session's value (its first series), for
    the first NUMBER_METRICS trend metrics of each group, at most MAX_NUMBERS; and a note when
    some were left out."""
    numbers: dict[str, float] = {}
    seen: set[TrendGroup] = set()
    for row in latest:
        if row.group in seen:
            continue
        seen.add(row.group)
        for metric in row.group.metrics[:NUMBER_METRICS]:
            value = row.values.get(metric)
            if value is not None and math.isfinite(value):
                numbers[f"{row.group.key}/{metric}"] = float(value)
    if len(numbers) <= MAX_NUMBERS:
        return numbers, []
    kept = dict(list(numbers.items())[:MAX_NUMBERS])
    return kept, [f"{len(numbers) - MAX_NUMBERS} latest values left out of the plotted numbers "
                  f"(at most {MAX_NUMBERS}): see the latest values table"]
