"""What reviewers decide, as typed rows: the four tables of the A2CPS derivative-QC kit
(django-qcapp-ratings' Session, Image, Rating and ClickedCoordinate: `rating_sessions`,
`rating_images`, `ratings`, `rating_coordinates`), with their columns first and in their order,
then the columns datman-flow adds to tie a row to a scanning session and series; and the
decisions the kit has no table for: sign-offs and series blacklisted or flagged.

Nothing here is ever replaced: a new rating, sign-off or decision is a new row (store/append.py
gives it the table's next id); the latest row counts and the history stays. Every table keeps
one file per scanning session, `<store>/<table>/<session label>.parquet`.

The integer codes are django-qcapp-ratings' (datman_flow/review/scales.py names them):
step MASK=0, SPATIAL_NORMALIZATION=1, SURFACE_LOCALIZATION=2, FMAP_COREGISTRATION=3, DTIFIT=4,
and datman-flow's raw-series steps RAW_T1W=100, RAW_BOLD=101, RAW_DWI=102; rating PASS=0,
UNSURE=1, FAIL=2; display X=0 (sagittal), Y=1 (coronal), Z=2 (axial).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True)
class RatingSessionRow:
    """One sitting of one reviewer over one scanning session (the kit's `session`)."""

    TABLE: ClassVar[str] = "rating_sessions"
    id: int
    step: int
    user: str | None
    created: datetime  # UTC
    scan_session: str = ""  # the scanning session's label


@dataclass(frozen=True)
class RatingImageRow:
    """One picture a reviewer rates (the kit's `image`): one slice of one series in one
    orientation. `img` is the PNG's path under the data folder (the export embeds its bytes)."""

    TABLE: ClassVar[str] = "rating_images"
    id: int
    img: str
    slice: int | None
    file1: str  # the NIfTI the picture shows, relative to the data folder
    file2: str | None
    display: int
    step: int
    created: datetime  # UTC
    scan_session: str = ""
    series_number: str = ""
    tag: str = ""
    width: int | None = None  # the PNG's size in pixels: clicks are in this space
    height: int | None = None


@dataclass(frozen=True)
class RatingRow:
    """One rating of one image (the kit's `rating`); the latest per image counts."""

    TABLE: ClassVar[str] = "ratings"
    id: int
    source_data_issue: bool
    rating: int
    img_id: int
    session: int  # the rating session's id
    notes: str
    created: datetime  # UTC
    scan_session: str = ""
    user: str = ""
    origin: str = "review"  # review | mriqc (the MRIQC report's rating widget; notes keep its value)


@dataclass(frozen=True)
class RatingCoordinateRow:
    """One click on an image, in the PNG's pixel space from its top-left corner (the kit's
    `coordinate`); a review without clicks is one row with x and y NULL."""

    TABLE: ClassVar[str] = "rating_coordinates"
    id: int
    source_data_issue: bool
    x: float | None
    y: float | None
    img_id: int
    session: int
    notes: str
    created: datetime  # UTC
    scan_session: str = ""
    user: str = ""


@dataclass(frozen=True)
class SignOffRow:
    """A reviewer signs a scanning session off: everything in it was looked at."""

    TABLE: ClassVar[str] = "review_signoffs"
    id: int
    scan_session: str
    user: str
    comment: str
    created: datetime  # UTC


@dataclass(frozen=True)
class SeriesDecisionRow:
    """A series blacklisted (left out of every export and of gold-standard promotion; DATMAN's
    "blacklisted"), flagged (kept, with a comment) or cleared (back to neither); the latest
    per series counts."""

    TABLE: ClassVar[str] = "series_decisions"
    id: int
    scan_session: str
    series_number: str
    tag: str
    decision: str  # blacklisted | flagged | cleared
    reason: str
    user: str
    created: datetime  # UTC


REVIEW_ROW_TYPES: tuple[type, ...] = (RatingSessionRow, RatingImageRow, RatingRow, RatingCoordinateRow, SignOffRow,
                                      SeriesDecisionRow)
