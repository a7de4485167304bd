"""Promoting a reviewed series to the gold standard of its site and tag (`datman-flow gold
promote`): the series is found in the metric store, its parameters written by drift/gold.py.
A series a reviewer blacklisted is never promoted (cleared first in the review app)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datman_flow.drift import find_gold, promote
from datman_flow.layout import DataLayout
from datman_flow.naming import InvalidLabel, parse_session_label
from datman_flow.pipeline.review_state import read_review
from datman_flow.store.queries import converted_series


class PromoteRefused(ValueError):
    """The series cannot be promoted; the message says why (exit code 2: the request is wrong,
    1: the data is not there)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Promoted:
    path: Path
    replaced: bool


def promote_series(config_dir: Path, layout: DataLayout, session: str, tag: str,
                   series_number: str | None = None) -> Promoted:
    """Make a converted series of a participant's session the gold standard of its site and tag."""
    try:
        scan_id = parse_session_label(session)
    except InvalidLabel as exc:
        raise PromoteRefused(str(exc), code=2) from None
    if scan_id.is_phantom:
        raise PromoteRefused(f"{session} is a phantom session: gold standards are promoted from participants' "
                             "sessions (phantoms are compared with the site's earlier phantoms)", code=2)
    rows = converted_series(layout.metric_store, session, tag)
    if series_number:
        rows = [r for r in rows if r.series_number == series_number]
    if not rows:
        raise PromoteRefused(f"no converted {tag} series{' ' + series_number if series_number else ''} of "
                             f"{session} in {layout.metric_store.db_path}")
    if len(rows) > 1:
        numbers = ", ".join(r.series_number for r in rows)
        raise PromoteRefused(f"{session} has several {tag} series ({numbers}): choose one with --series")
    row = rows[0]
    refuse_blacklisted(layout, session, row.series_number)
    replaced = find_gold(config_dir, scan_id.study, scan_id.site, tag) is not None
    path = promote(config_dir, scan_id.study, scan_id.site, tag, str(row.nifti_path), row.dicom_kept,
                   session, row.series_number, row.dcm2niix_version)
    return Promoted(path, replaced)


def refuse_blacklisted(layout: DataLayout, session: str, series_number: str) -> None:
    """PromoteRefused (exit 2) when the series' latest decision is `blacklisted`."""
    review = read_review(layout, session)
    if series_number not in review.blacklisted:
        return
    decision = review.decisions[series_number]
    reason = " ".join(str(decision.reason).split()) or "no reason given"
    raise PromoteRefused(f"series {series_number} of {session} is blacklisted by {decision.user} on "
                         f"{decision.created:%Y-%m-%d}: {reason}; clear it in the review app first", code=2)
