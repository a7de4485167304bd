"""Core summaries (pipeline/summary.py) as Dagster metadata and check results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from datman_flow.pipeline.summary import CheckOutcome, Markdown


def metadata(values: Mapping[str, object]) -> dict[str, object]:
    """Markdown -> a markdown value, Path -> a path value, the rest as it is."""
    out: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, Markdown):
            out[key] = dg.MetadataValue.md(str(value))
        elif isinstance(value, Path):
            out[key] = dg.MetadataValue.path(str(value))
        else:
            out[key] = value
    return out


def check_result(outcome: CheckOutcome, label: str) -> dg.AssetCheckResult:
    """The result of one session's check; its description starts with the session label, so a
    list of results (the check's history, an alert) says whose it is."""
    severity = dg.AssetCheckSeverity.ERROR if outcome.severity == "error" else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(check_name=outcome.name, passed=outcome.passed, severity=severity,
                               description=f"{label}: {outcome.description}", metadata=metadata(outcome.metadata))


def log_all(log: dg.DagsterLogManager, warnings: list[str], level: str = "warning") -> None:
    for line in warnings:
        getattr(log, level)(line)
