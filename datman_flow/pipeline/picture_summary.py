"""The QC pictures of a session as markdown for the Dagster UI: a small copy of each picture
inline (a `data:` URI, all of them within qc/thumbnail.py's byte budget) that links to the
full-size picture on the review app when its URL is known, else the picture's server path."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from datman_flow.pipeline.qc import SeriesQC
from datman_flow.qc.thumbnail import INLINE_BUDGET, InlineSet, inline_pictures
from datman_flow.review.urls import picture_url

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|!])")


def md_text(value: object) -> str:
    """Text shown as is inside markdown (no emphasis, links or line breaks from it)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def server_path(path: str) -> str:
    return f"on the server: `{path.replace('`', '')}`"


def series_block(q: SeriesQC, pictures: InlineSet, pictures_url: str) -> str:
    number, tag = q.series.series_number, q.series.tag or ""
    heading = f"**series {md_text(number)} {md_text(tag)} ({md_text(q.kind)})**"
    png = Path(q.picture_path)
    link = picture_url(pictures_url, q.series.session, png) if pictures_url else ""
    inline = pictures.shown.get(png)
    if inline is None:
        reason = md_text(pictures.left_out.get(png, "not shown"))
        where = f"[full size]({link})" if link else server_path(q.picture_path)
        return f"{heading}\n\n_{reason}_ ({where})"
    image = f"![QC picture of series {md_text(number)} {md_text(tag)}]({inline.uri})"
    if link:
        return f"{heading}\n\n[{image}]({link})"
    return f"{heading}\n\n{image}\n\n{server_path(q.picture_path)}"


def pictures_markdown(measured: Sequence[SeriesQC], pictures_url: str = "",
                      budget: int = INLINE_BUDGET) -> str:
    """Markdown with every series' picture (thumbnail linked to `pictures_url`'s full-size copy,
    or with its server path); '' when the session has no picture."""
    with_picture = [q for q in measured if q.picture_path]
    if not with_picture:
        return ""
    pictures = inline_pictures([Path(q.picture_path) for q in with_picture], budget)
    blocks = [series_block(q, pictures, pictures_url) for q in with_picture]
    widths = sorted({p.step.width for p in pictures.shown.values()})
    note = (f"{len(pictures.shown)} of {len(with_picture)} pictures inline"
            + (f" at {widths[0]} px" if len(widths) == 1 else "")
            + f", {pictures.total / 1000:.0f} KB of the {budget / 1000:.0f} KB budget"
            + ("; click a picture for its full size" if pictures_url else ""))
    return "\n\n".join([*blocks, f"_{note}_"])
