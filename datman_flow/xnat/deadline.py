"""Wall-clock deadlines for work with XNAT: a request, a scan, a session's workers.

A `Deadline` is a point in monotonic time with a name that says whose it is and which setting
sets it, so that a message can tell the operator what ran out: "scan 5's deadline of 60 min
(scan_timeout)".
"""
from __future__ import annotations

import time


class Deadline:
    """`seconds` from now (monotonic clock); `what` names it, `setting` the knob that sets it."""

    __slots__ = ("at", "seconds", "setting", "what")

    def __init__(self, seconds: float, what: str, setting: str = "") -> None:
        if not seconds > 0:
            raise ValueError(f"{setting or what} must be a positive number of seconds, not {seconds!r}")
        self.seconds = float(seconds)
        self.what = what
        self.setting = setting
        self.at = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def __str__(self) -> str:
        setting = f" ({self.setting})" if self.setting else ""
        return f"{self.what} of {duration(self.seconds)}{setting}"

    def __repr__(self) -> str:
        return f"<Deadline {self}, {self.remaining():.1f} s left>"


def sooner(first: Deadline, second: Deadline | None) -> Deadline:
    """The deadline that comes first."""
    return first if second is None or first.at <= second.at else second


def duration(seconds: float) -> str:
    """'0.5 s', '42 s', '10 min', '1 h 5 min': short, for messages."""
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min".replace(" 0 min", "")
