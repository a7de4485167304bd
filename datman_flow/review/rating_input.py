"""What a reviewer sends, checked before anything is stored (pure functions of the form's text):
a rating of one of this session's pictures, a sign-off, a series decision. Each refusal says
which field is wrong and why (`BadInput`, shown with 400)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from datman_flow.pipeline.review_state import BLACKLISTED, CLEARED, FLAGGED
from datman_flow.review.scales import Rating

MAX_NOTES = 2000
MAX_POINTS = 50
DECISIONS = (BLACKLISTED, FLAGGED, CLEARED)
TRUE = ("1", "on", "true", "yes")


class BadInput(ValueError):
    """A field that cannot be stored; the message names it."""


@dataclass(frozen=True)
class RatingInput:
    img_id: int
    rating: Rating
    notes: str
    source_data_issue: bool
    points: tuple[tuple[float, float], ...]


def text_field(form: Mapping[str, str], name: str, required: str = "") -> str:
    """The field's text, trimmed, at most MAX_NOTES characters; `required`: why it may not be empty."""
    value = form.get(name, "")
    if not isinstance(value, str):
        raise BadInput(f"{name}: text expected")
    value = value.strip()
    if len(value) > MAX_NOTES:
        raise BadInput(f"{name}: at most {MAX_NOTES} characters ({len(value)} sent)")
    if "\x00" in value:
        raise BadInput(f"{name}: a NUL character is not text")
    if required and not value:
        raise BadInput(f"{name}: {required}")
    return value


def whole_number(form: Mapping[str, str], name: str) -> int:
    value = str(form.get(name, "")).strip()
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise BadInput(f"{name}: a whole number expected, not {value[:20]!r}")
    return int(value)


def number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(f"{what}: a finite number expected, not {str(value)[:20]!r}")
    return float(value)


def not_a_number(constant: str) -> float:
    raise BadInput(f"points: {constant} is not a number")


def parse_points(text: str, size: tuple[int, int] | None) -> tuple[tuple[float, float], ...]:
    """`[{"x": .., "y": ..}, ...]` in the picture's pixel space (0 <= x <= width, 0 <= y <= height)."""
    if not text.strip():
        return ()
    try:
        points = json.loads(text, parse_constant=not_a_number)
    except BadInput:
        raise
    except ValueError as exc:
        raise BadInput(f"points: not JSON ({str(exc)[:80]})") from None
    if not isinstance(points, list):
        raise BadInput('points: a JSON list of {"x": .., "y": ..} expected')
    if len(points) > MAX_POINTS:
        raise BadInput(f"points: at most {MAX_POINTS} clicks per rating ({len(points)} sent)")
    if points and size is None:
        raise BadInput("points: the picture's size is unknown, so clicks cannot be placed on it")
    out = []
    for i, point in enumerate(points):
        if not isinstance(point, dict) or set(point) != {"x", "y"}:
            raise BadInput(f'points[{i}]: {{"x": .., "y": ..}} expected')
        x, y = number(point["x"], f"points[{i}].x"), number(point["y"], f"points[{i}].y")
        width, height = size  # type: ignore[misc]
        if not (0 <= x <= width and 0 <= y <= height):
            raise BadInput(f"points[{i}]: ({x:g}, {y:g}) is outside the {width}x{height} picture")
        out.append((round(x, 2), round(y, 2)))
    return tuple(out)


def parse_rating(form: Mapping[str, str], sizes: Mapping[int, tuple[int, int] | None]) -> RatingInput:
    """A rating of one of the pictures in `sizes` (img_id -> its size, None when unknown)."""
    img_id = whole_number(form, "img_id")
    if img_id not in sizes:
        raise BadInput(f"img_id: picture {img_id} is not one of this session's pictures to rate")
    rating = whole_number(form, "rating")
    if rating not in iter(Rating):
        raise BadInput(f"rating: {rating} is not one of 0 (PASS), 1 (UNSURE), 2 (FAIL)")
    notes = text_field(form, "notes")
    issue = str(form.get("source_data_issue", "")).strip().lower() in TRUE
    return RatingInput(img_id, Rating(rating), notes, issue, parse_points(str(form.get("points", "")), sizes[img_id]))


def parse_decision(form: Mapping[str, str]) -> tuple[str, str]:
    """(decision, reason): blacklisting and flagging need a reason, clearing does not."""
    decision = str(form.get("decision", "")).strip()
    if decision not in DECISIONS:
        raise BadInput(f"decision: one of {', '.join(DECISIONS)}, not {decision[:20]!r}")
    why = {BLACKLISTED: "say why the series is blacklisted", FLAGGED: "a comment is needed to flag a series"}
    return decision, text_field(form, "reason", required=why.get(decision, ""))
