"""The pictures reviewers rate, per measured series: one slice in each orientation, rendered
beside the series' NIfTI and registered in `rating_images`. (Placeholder: being written.)"""

from __future__ import annotations

from datman_flow.layout import DataLayout
from datman_flow.store.review_rows import RatingImageRow


def ensure_review_images(layout: DataLayout, label: str) -> list[RatingImageRow]:
    """The session's registered pictures to rate, rendering and registering any missing ones."""
    return layout.metric_store.read(RatingImageRow, label)
