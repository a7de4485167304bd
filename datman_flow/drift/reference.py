"""A provisional reference where a tag has no gold standard yet: what the site usually does.

Each field's most common value over the site's previous series of the tag (one parameters
dict per session, oldest first). A field absent from most of them is absent from the
reference too. Ties go to the value seen most recently (later in the sequence). Findings
against it are marked provisional: the reference has not been reviewed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from datman_flow.drift.parameters import normalise_parameters

MIN_SESSIONS = 3
_ABSENT = "\0absent"


def provisional_reference(history: Sequence[Mapping[str, object]],
                          min_sessions: int = MIN_SESSIONS) -> dict[str, object] | None:
    """The most common value of each field, or None with fewer than `min_sessions` sessions."""
    if len(history) < min_sessions or not history:
        return None
    sessions = [normalise_parameters(params) for params in history]
    names = list(dict.fromkeys(name for params in sessions for name in params))
    reference: dict[str, object] = {}
    for name in names:
        counts: dict[str, int] = {}
        last_seen: dict[str, int] = {}
        values: dict[str, object] = {}
        for index, params in enumerate(sessions):
            value = params.get(name)
            key = _ABSENT if value is None else json.dumps(value, sort_keys=True)
            counts[key] = counts.get(key, 0) + 1
            last_seen[key] = index
            values[key] = value
        best = max(counts, key=lambda key: (counts[key], last_seen[key]))
        if best != _ABSENT:
            reference[name] = values[best]
    return reference
