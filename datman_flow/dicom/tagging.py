"""Tagging a series by the site's regex rules (RE2, so in linear time: config/patterns.py).

A series gets a tag when exactly one rule matches it. Derived series (ImageType contains
DERIVED) and non-image objects (reports, secondary captures) are only tagged by a rule that
names ImageType explicitly: a study lead who wants the scanner's FA maps says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from datman_flow.config import TagRule
from datman_flow.dicom.headers import SeriesHeader


@dataclass(frozen=True)
class TagDecision:
    tag: str | None
    reason: str | None  # why there is no tag; None when tagged


def tag_series(header: SeriesHeader, rules: Mapping[str, TagRule]) -> TagDecision:
    matching = [rule for rule in rules.values() if rule.matches(header.fields)]
    allowed = [rule for rule in matching if rule.names_image_type or (header.is_image and not header.is_derived)]
    if len(allowed) == 1:
        return TagDecision(tag=allowed[0].tag, reason=None)
    if len(allowed) > 1:
        names = ", ".join(sorted(rule.tag for rule in allowed))
        return TagDecision(tag=None, reason=f"matched several rules: {names}")
    if not header.is_image:
        what = header.get("Modality") or "?"
        return TagDecision(
            tag=None,
            reason=f"not an image (Modality {what}, SOP class {header.get('SOPClassUID') or '?'}); "
            "only a rule naming ImageType tags it",
        )
    if header.is_derived:
        return TagDecision(
            tag=None,
            reason=f"derived series (ImageType {header.image_type}); only a rule naming ImageType tags it",
        )
    return TagDecision(tag=None, reason="no rule matched")
