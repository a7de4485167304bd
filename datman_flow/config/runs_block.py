"""`runs.yml` beside `tags.yml` (optional): how hard datman-flow may push the lab's XNAT servers
and its machines. Lab level, because one Dagster instance runs every study.

    max_concurrent_runs: 4      # runs in progress at once; the rest wait in Dagster's run queue
    pulls_per_xnat: 2           # runs working on sessions of one XNAT server at once
    qc_memory_gb: 8             # memory the QC steps may use together ...
    qc_gb_per_session: 2.5      # ... and what one session's QC holds at its peak: 3 at once
    arrival_priority: 10        # dagster/priority of a session the sensor finds new
    backfill_priority: -10      # ... of one already older than backfill_after_hours when first seen
    backfill_after_hours: 24
    refresh_every_minutes: 5    # while sessions are in progress, refresh the study views at most this often

Each value can be overridden by an environment variable (ENV_VARS), which is what a container
deployment sets. The sensors read the priorities and the refresh interval on every tick; the
limits are the Dagster instance's (`dagster.yaml`, written by `datman-flow instance yaml`), read
when the daemon starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datman_flow.config.errors import ConfigIssue, issues_from_validation
from datman_flow.config.yaml_lines import read_yaml

RUNS_FILE = "runs.yml"
# the environment variable that overrides each value of runs.yml
ENV_VARS = {
    "max_concurrent_runs": "DATMAN_MAX_CONCURRENT_RUNS",
    "pulls_per_xnat": "DATMAN_PULLS_PER_XNAT",
    "qc_memory_gb": "DATMAN_QC_MEMORY_GB",
    "qc_gb_per_session": "DATMAN_QC_GB_PER_SESSION",
    "arrival_priority": "DATMAN_ARRIVAL_PRIORITY",
    "backfill_priority": "DATMAN_BACKFILL_PRIORITY",
    "backfill_after_hours": "DATMAN_BACKFILL_AFTER_HOURS",
    "refresh_every_minutes": "DATMAN_REFRESH_EVERY_MINUTES",
}


class RunSettings(BaseModel):
    """runs.yml as written (strict: unknown keys and quoted numbers refused), and the defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    max_concurrent_runs: int = Field(4, ge=1, le=1000)
    pulls_per_xnat: int = Field(2, ge=1, le=100)
    qc_memory_gb: float = Field(8.0, gt=0, le=100_000, allow_inf_nan=False)
    qc_gb_per_session: float = Field(2.5, gt=0, le=1000, allow_inf_nan=False)
    arrival_priority: int = Field(10, ge=-1000, le=1000)
    backfill_priority: int = Field(-10, ge=-1000, le=1000)
    backfill_after_hours: float = Field(24.0, ge=0, le=24 * 3650, allow_inf_nan=False)
    refresh_every_minutes: float = Field(5.0, ge=0, le=24 * 60, allow_inf_nan=False)

    @property
    def qc_slots(self) -> int:
        """How many sessions' QC may run at once (the `qc` pool's limit): at least one."""
        return max(1, math.floor(self.qc_memory_gb / self.qc_gb_per_session + 1e-9))


def load_runs(config_dir: Path, env: Mapping[str, str]) -> tuple[RunSettings, list[ConfigIssue]]:
    """runs.yml (defaults when absent) with the environment's overrides, or the problems."""
    path = config_dir / RUNS_FILE
    raw: dict = {}
    issues: list[ConfigIssue] = []
    if path.exists():
        doc, issues = read_yaml(path)
        if doc is not None and doc.data is not None and not isinstance(doc.data, dict):
            return RunSettings(), issues + [ConfigIssue(doc.file, doc.line(()), "expected 'key: value' lines, "
                                                        "e.g. 'max_concurrent_runs: 4'")]
        if doc is not None:
            try:
                raw = RunSettings.model_validate(doc.data or {}).model_dump(exclude_unset=True)
            except ValidationError as exc:
                return RunSettings(), issues + issues_from_validation(exc, doc, RunSettings)
    values = dict(raw)
    for key, var in ENV_VARS.items():
        text = env.get(var, "").strip()
        if not text:
            continue
        try:
            number = int(text) if RunSettings.model_fields[key].annotation is int else float(text)
            values[key] = getattr(RunSettings.model_validate({key: number}), key)
        except (ValueError, ValidationError) as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else "not a number"
            issues.append(ConfigIssue("environment", None, f"{var}={text!r}: {reason} (it overrides "
                                                           f"{RUNS_FILE}'s {key})"))
    if issues:
        return RunSettings(), issues
    return RunSettings.model_validate(values), []
