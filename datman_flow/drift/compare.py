"""Compare a series' scanner parameters with its reference (gold standard or provisional).

For each compared field: absent in both -> nothing; only in the reference -> `missing`; only
in the series -> `unexpected`; SoftwareVersions different -> `software_upgrade` (listed first);
numbers farther apart than the field's tolerance -> `changed` (a difference equal to the
tolerance is inside); lists element by element with the same tolerance, a different length
-> `changed`; strings exactly (after stripping).

A tolerance is absolute (a number, in the sidecar's units) or relative (`Relative`, in ppm of the
reference value: ImagingFrequency's default). A finding records the absolute tolerance that
applied (for a relative one: its value at the reference, or at the list's largest element),
so `header_diffs.tolerance` is always in the parameter's units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from datman_flow.drift.parameters import normalise_parameters
from datman_flow.drift.settings import HeaderCheckSettings, Relative, Tolerance

Kind = Literal["software_upgrade", "changed", "missing", "unexpected"]
SOFTWARE_FIELD = "SoftwareVersions"
# Slack for binary floating point: 0.03 + 1e-5 - 0.03 is 1.0000000000000286e-05, which is
# "exactly the tolerance" to whoever wrote both numbers.
RELATIVE_SLACK = 1e-9
LIST_HEAD, LIST_TAIL = 4, 2


@dataclass(frozen=True)
class Finding:
    field: str
    expected: object
    actual: object
    tolerance: float | None
    kind: Kind
    provisional: bool = False


def compare_parameters(actual: Mapping[str, object], expected: Mapping[str, object],
                       settings: HeaderCheckSettings, *, provisional: bool = False) -> list[Finding]:
    actual, expected = normalise_parameters(actual), normalise_parameters(expected)
    findings: list[Finding] = []
    for name in settings.compared:
        got, want = actual.get(name), expected.get(name)
        if got is None and want is None:
            continue
        if got is None:
            findings.append(Finding(name, want, None, None, "missing", provisional))
        elif want is None:
            findings.append(Finding(name, None, got, None, "unexpected", provisional))
        elif name == SOFTWARE_FIELD:
            if got != want:
                findings.append(Finding(name, want, got, None, "software_upgrade", provisional))
        else:
            tolerance = settings.tolerance.get(name, 0.0) if _numeric(got, want) else None
            if not _same(got, want, 0.0 if tolerance is None else tolerance):
                shown = None if tolerance is None else _limit(tolerance, _largest(want))
                findings.append(Finding(name, want, got, shown, "changed", provisional))
    order = {name: index for index, name in enumerate(settings.compared)}
    return sorted(findings, key=lambda f: (f.kind != "software_upgrade", order[f.field]))


def _numeric(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return True
    return (isinstance(a, list) and isinstance(b, list)
            and all(isinstance(v, float) for v in a) and all(isinstance(v, float) for v in b))


def _limit(tolerance: Tolerance, reference: float) -> float:
    return tolerance.limit(reference) if isinstance(tolerance, Relative) else float(tolerance)


def _largest(value: object) -> float:
    if isinstance(value, list):
        return max((abs(v) for v in value), default=0.0)
    return float(value)  # type: ignore[arg-type]


def _close(a: float, b: float, tolerance: Tolerance) -> bool:
    """`a` within `tolerance` of the reference `b`."""
    limit = _limit(tolerance, b)
    return abs(a - b) <= limit + RELATIVE_SLACK * max(abs(a), abs(b), limit)


def _same(a: object, b: object, tolerance: Tolerance) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return _close(a, b, tolerance)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tolerance) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


# ---- a table for the UI ---------------------------------------------------------------------

def format_value(value: object) -> str:
    """A value for a table cell: floats without noise, long lists abbreviated, '—' for absent."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = [format_value(item) for item in value]
        if len(items) > LIST_HEAD + LIST_TAIL + 1:
            items = items[:LIST_HEAD] + ["…"] + items[-LIST_TAIL:]
            return f"[{', '.join(items)}] ({len(value)} values)"
        return f"[{', '.join(items)}]"
    return str(value)
