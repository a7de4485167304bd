"""Where a session's review by people stands: `pending` (not signed off yet), `passed` (signed
off, no image's latest rating FAIL and no series blacklisted) or `failed` (an image's latest
rating is FAIL, or a series is blacklisted), with the reasons. The `review` check, the board,
the alerts and the review app's queue all ask this one function.

A failure stays a fact of the session (the check shows it) but stops needing a person once
someone signs the session off after it (`settled`): the board then leaves it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from datman_flow.layout import DataLayout
from datman_flow.pipeline.summary import CheckOutcome
from datman_flow.review.scales import DISPLAY_NAMES, Display, Rating
from datman_flow.store.review_rows import (
    RatingImageRow,
    RatingRow,
    SeriesDecisionRow,
    SignOffRow,
)

REVIEW = "review"  # the check's name
PENDING, PASSED, FAILED = "pending", "passed", "failed"
BLACKLISTED, FLAGGED, CLEARED = "blacklisted", "flagged", "cleared"


@dataclass(frozen=True)
class Finding:
    """A FAIL rating or a blacklisted series: what, by whom, when."""

    text: str
    user: str
    created: datetime


@dataclass(frozen=True)
class ReviewState:
    session: str
    state: str  # pending | passed | failed
    findings: tuple[Finding, ...] = ()
    signoff: SignOffRow | None = None  # the latest
    ratings: int = 0  # every rating given, the history included
    rated_images: int = 0
    images: int = 0
    decisions: dict[str, SeriesDecisionRow] = field(default_factory=dict)  # series number -> latest

    @property
    def settled(self) -> bool:
        """Signed off after every finding (or nothing found and signed off)."""
        if self.signoff is None:
            return False
        return all(self.signoff.created >= f.created for f in self.findings)

    @property
    def blacklisted(self) -> tuple[str, ...]:
        """Series numbers whose latest decision is `blacklisted`."""
        return tuple(n for n, d in self.decisions.items() if d.decision == BLACKLISTED)

    @property
    def line(self) -> str:
        if self.state == FAILED:
            return "; ".join(f.text for f in self.findings)
        if self.state == PASSED and self.signoff is not None:
            return f"signed off by {self.signoff.user} on {self.signoff.created:%Y-%m-%d %H:%M} UTC"
        return f"awaiting review ({self.rated_images} of {self.images} picture(s) rated, not signed off)"


def latest(rows: Sequence, key) -> dict:
    """The row with the largest id per key(row)."""
    out: dict = {}
    for row in sorted(rows, key=lambda r: r.id):
        out[key(row)] = row
    return out


def image_name(image: RatingImageRow | None) -> str:
    if image is None:
        return "an image"
    where = DISPLAY_NAMES.get(Display(image.display), "?") if image.display in iter(Display) else "?"
    slice_text = f" slice {image.slice}" if image.slice is not None else ""
    return f"series {image.series_number} ({image.tag}) {where}{slice_text}"


def review_state(session: str, images: Sequence[RatingImageRow], ratings: Sequence[RatingRow],
                 signoffs: Sequence[SignOffRow], decisions: Sequence[SeriesDecisionRow]) -> ReviewState:
    """The state of one session from its review rows (any order)."""
    by_id = {image.id: image for image in images}
    last_rating = latest(ratings, lambda r: r.img_id)
    last_decision = latest(decisions, lambda d: d.series_number)
    findings = []
    for rating in sorted(last_rating.values(), key=lambda r: r.id):
        if rating.rating == Rating.FAIL:
            notes = f": {rating.notes}" if rating.notes else ""
            findings.append(Finding(f"{image_name(by_id.get(rating.img_id))} rated FAIL by {rating.user or '?'}{notes}",
                                    rating.user, rating.created))
    for number, decision in sorted(last_decision.items()):
        if decision.decision == BLACKLISTED:
            findings.append(Finding(f"series {number} ({decision.tag}) blacklisted by {decision.user}: "
                                    f"{decision.reason}", decision.user, decision.created))
    signoff = max(signoffs, key=lambda s: s.id) if signoffs else None
    state = FAILED if findings else PASSED if signoff is not None else PENDING
    return ReviewState(session, state, tuple(findings), signoff, len(ratings), len(last_rating), len(images),
                       last_decision)


def read_review(layout: DataLayout, label: str) -> ReviewState:
    store = layout.metric_store
    return review_state(label, store.read(RatingImageRow, label), store.read(RatingRow, label),
                        store.read(SignOffRow, label), store.read(SeriesDecisionRow, label))


def review_outcome(state: ReviewState) -> CheckOutcome:
    """The `review` check: passed once signed off with nothing failed; pending is a warning (a
    person has yet to look), failed an error."""
    return CheckOutcome(REVIEW, state.state == PASSED, "error" if state.state == FAILED else "warn",
                        f"{state.state}: {state.line}",
                        {"review": state.state, "ratings": state.ratings, "rated_pictures": state.rated_images,
                         "pictures": state.images, "blacklisted_series": ", ".join(state.blacklisted) or "none",
                         "signed_off_by": state.signoff.user if state.signoff else ""})
