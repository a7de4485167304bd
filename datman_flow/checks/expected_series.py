"""Did the session bring every series the protocol promised? (DATMAN documented `Count`
and never checked it; here it is checked for every session.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datman_flow.config import TagRule
from datman_flow.records import SeriesRecord
from datman_flow.store.rows import CheckRow

CHECK_NAME = "expected_series"


def count_phrase(row: CheckRow) -> str:
    """One tag's outcome as everyone words it: 'missing DTI60 (0/1)', 'extra T1 (2/1)', else its detail."""
    found, expected = row.found or 0, row.expected or 0
    word = "missing" if found < expected else "extra" if found > expected else ""
    return f"{word} {row.tag} ({row.found}/{row.expected})" if word else row.detail


@dataclass(frozen=True)
class ExpectedSeriesResult:
    passed: bool
    rows: tuple[CheckRow, ...]  # one per tag the site expects (or found)
    untagged: tuple[SeriesRecord, ...]
    failed_downloads: tuple[SeriesRecord, ...]

    @property
    def missing(self) -> list[CheckRow]:
        return [row for row in self.rows if (row.found or 0) < (row.expected or 0)]

    @property
    def extra(self) -> list[CheckRow]:
        return [row for row in self.rows if (row.found or 0) > (row.expected or 0)]

    def summary(self) -> str:
        parts = [count_phrase(r) for r in self.missing + self.extra]
        if self.untagged:
            parts.append(f"{len(self.untagged)} untagged")
        if self.failed_downloads:
            parts.append(f"{len(self.failed_downloads)} failed downloads")
        return "; ".join(parts) if parts else "every expected series is present"


def check_expected_series(session: str, series: Sequence[SeriesRecord],
                          rules: Mapping[str, TagRule]) -> ExpectedSeriesResult:
    by_tag: dict[str, list[SeriesRecord]] = {}
    for record in series:
        if record.tag:
            by_tag.setdefault(record.tag, []).append(record)
    rows = []
    for tag in sorted(set(rules) | set(by_tag)):
        found = by_tag.get(tag, [])
        expected = rules[tag].count if tag in rules else 0
        numbers = tuple(r.series_number for r in found)
        if len(found) < expected:
            detail = f"missing {expected - len(found)}"
        elif len(found) > expected:
            detail = f"extra {len(found) - expected}: series {', '.join(numbers)}"
        else:
            detail = "ok"
        rows.append(CheckRow(session=session, check_name=CHECK_NAME, tag=tag, passed=len(found) == expected,
                                expected=expected, found=len(found), detail=detail, series=numbers))
    untagged = tuple(r for r in series if not r.tag and r.download_status == "complete")
    failed = tuple(r for r in series if r.download_status != "complete")
    return ExpectedSeriesResult(passed=all(row.passed for row in rows), rows=tuple(rows),
                                untagged=untagged, failed_downloads=failed)
