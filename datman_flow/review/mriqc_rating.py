"""A rating from an MRIQC report's widget, read and recorded as the review tables' rows.

The widget posts `{rating, md5sum, name, comment}`. nireports' slider gives 1.0 to 4.0 (1
exclude, 2 poor, 3 acceptable, 4 excellent) as a number or a numeric string; nireports puts the
list of artifacts ticked in `comment`, as JSON. The rating is of the whole series, so it is
recorded against one `rating_images` row for the series' QC picture (registered once per
series: unique on slice, file1, display and step), in a rating session of its own, with the
widget's value, label and comment kept in the notes and `origin` 'mriqc'.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from datman_flow.review.scales import STEP_OF_QC_TYPE, Display, Rating
from datman_flow.review.series_index import MeasuredSeries
from datman_flow.safe_paths import UnsafePath, inside
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.review_rows import RatingImageRow, RatingRow, RatingSessionRow

MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
LOWEST, HIGHEST = 1.0, 4.0
MAX_NOTES = 4000  # characters kept of the widget's comment and name
# the upper bound of each of nireports' labels, and the verdict it maps to
SCALE: tuple[tuple[float, str, Rating], ...] = (
    (1.5, "exclude", Rating.FAIL), (2.5, "poor", Rating.UNSURE), (3.5, "acceptable", Rating.PASS),
    (math.inf, "excellent", Rating.PASS))


class RatingRefused(ValueError):
    """A body that is not a rating; the message says what is wrong (answered with 422)."""


@dataclass(frozen=True)
class MriqcRating:
    value: float  # 1.0 - 4.0
    md5sum: str  # lower case
    name: str = ""
    comment: str = ""

    @property
    def label(self) -> str:
        return next(label for bound, label, _ in SCALE if self.value <= bound)

    @property
    def verdict(self) -> Rating:
        """<= 1.5 FAIL, <= 2.5 UNSURE, else PASS."""
        return next(verdict for bound, _, verdict in SCALE if self.value <= bound)

    @property
    def notes(self) -> str:
        """'MRIQC rating 2 (poor); artifacts: ["head-motion"]' and the name, if any."""
        parts = [f"MRIQC rating {self.value:g} ({self.label})"]
        if self.comment:
            try:
                decoded = json.loads(self.comment)
            except ValueError:
                decoded = None
            if isinstance(decoded, list):
                parts.append(f"artifacts: {json.dumps(decoded, ensure_ascii=False)}")
            else:
                parts.append(f"comment: {self.comment}")
        if self.name:
            parts.append(f"name: {self.name}")
        return "; ".join(parts)[:MAX_NOTES]


def rating_value(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RatingRefused(f"rating must be a number from {LOWEST:g} to {HIGHEST:g}, not {type(value).__name__}")
    try:
        number = float(value)
    except ValueError:
        raise RatingRefused(f"rating {str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number) or not LOWEST <= number <= HIGHEST:
        raise RatingRefused(f"rating {number:g} is outside {LOWEST:g} - {HIGHEST:g} (1 exclude, 2 poor, "
                            f"3 acceptable, 4 excellent)")
    return number


def optional_text(body: dict, key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RatingRefused(f"{key} must be text, not {type(value).__name__}")
    return value


def parse_rating(body: bytes) -> MriqcRating:
    """The rating a request's body holds; RatingRefused saying what is wrong."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RatingRefused("the body is not JSON: send {\"rating\": ..., \"md5sum\": ..., \"comment\": ...}") from None
    if not isinstance(data, dict):
        raise RatingRefused(f"the body must be a JSON object with rating and md5sum, not a {type(data).__name__}")
    missing = [key for key in ("rating", "md5sum") if data.get(key) is None]
    if missing:
        raise RatingRefused(f"missing {' and '.join(missing)}")
    md5 = data["md5sum"]
    if not isinstance(md5, str) or not MD5.match(md5):
        raise RatingRefused("md5sum must be 32 hexadecimal characters (the NIfTI's MD5, as in the report)")
    return MriqcRating(rating_value(data["rating"]), md5.lower(), optional_text(data, "name"),
                       optional_text(data, "comment"))


def png_size(path: Path) -> tuple[int | None, int | None]:
    """Width and height from a PNG's header (None, None if it is not one)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
    except OSError:
        return None, None
    if len(head) < 24 or not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        return None, None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def image_key(row: RatingImageRow) -> tuple[object, ...]:
    return row.slice, row.file1, row.display, row.step


def series_image(store: MetricStore, data_dir: Path, series: MeasuredSeries, now: datetime) -> RatingImageRow:
    """The series' picture as a `rating_images` row: registered on its first rating, found after."""
    width = height = None
    if series.picture:
        try:
            width, height = png_size(inside(data_dir / series.picture, data_dir))
        except UnsafePath:
            pass
    wanted = RatingImageRow(id=0, img=series.picture, slice=None, file1=series.nifti, file2=None, display=Display.Z,
                            step=int(STEP_OF_QC_TYPE[series.qc_type]), created=now, scan_session=series.session,
                            series_number=series.series_number, tag=series.tag, width=width, height=height)
    def registered() -> RatingImageRow | None:
        found = [r for r in store.read(RatingImageRow, series.session) if image_key(r) == image_key(wanted)]
        return min(found, key=lambda r: r.id) if found else None

    known = registered()  # the usual case after the first rating: no lock taken, no write
    if known is not None:
        return known
    added = store.append(RatingImageRow, series.session, [wanted], unique=image_key)
    known = added[0] if added else registered()  # another request registered it meanwhile
    assert known is not None
    return known


def record_rating(store: MetricStore, data_dir: Path, series: MeasuredSeries, user: str, rating: MriqcRating,
                  clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> RatingRow:
    """Add the rating (with its picture, if new, and a rating session) to the store; the rating row."""
    now = clock().astimezone(UTC).replace(tzinfo=None)
    image = series_image(store, Path(data_dir), series, now)
    sitting = store.append(RatingSessionRow, series.session, [
        RatingSessionRow(id=0, step=image.step, user=user, created=now, scan_session=series.session)])[0]
    return store.append(RatingRow, series.session, [
        RatingRow(id=0, source_data_issue=False, rating=int(rating.verdict), img_id=image.id, session=sitting.id,
                  notes=rating.notes, created=now, scan_session=series.session, user=user, origin="mriqc")])[0]
