"""Running a session's assets in-process on a Dagster instance: the CLI's `ingest` and the
headless demo (the sensor's runs go through the daemon instead)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from datman_flow.defs.after_run import failure_reason
from datman_flow.defs.health import judge_finished_run
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings, missing_credentials, xnat_from_env
from datman_flow.defs.session_assets import SESSION_ASSETS
from datman_flow.pipeline.health import Health
from datman_flow.records import SeriesRecord


@contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """The lab's instance when DAGSTER_HOME is set (runs show in the UI), else a throw-away one."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


@dataclass
class SessionRun:
    label: str
    success: bool
    error: str = ""
    series: list[SeriesRecord] = field(default_factory=list)
    checks: list[tuple[str, bool, str, str]] = field(default_factory=list)  # (name, passed, description, severity)
    run_id: str = ""
    qc: dict[str, object] = field(default_factory=dict)  # the qc_metrics asset's counts and problems
    health: Health | None = None  # the session's verdict, judged when the run had finished


def run_session(instance: dg.DagsterInstance, label: str, config_dir: Path, data_dir: Path,
                log_level: str = "CRITICAL", selection: list[str] | None = None,
                tags: dict[str, str] | None = None) -> SessionRun:
    """Materialize the session's assets (all, or the named ones) and their checks, in-process."""
    no_credentials = missing_credentials()
    if no_credentials:
        return SessionRun(label=label, success=False, error=f"raw_dicom: {no_credentials}")
    if not instance.has_dynamic_partition(SESSIONS.name, label):
        instance.add_dynamic_partitions(SESSIONS.name, [label])
    datman = DatmanSettings(config_dir=str(config_dir), data_dir=str(data_dir))
    result = dg.materialize(
        SESSION_ASSETS,
        selection=selection,
        partition_key=label,
        instance=instance,
        resources={"datman": datman, "xnat": xnat_from_env()},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        tags={"datman/source": "cli", **(tags or {})},
    )
    run = SessionRun(label=label, success=result.success, run_id=result.run_id)
    if not result.success:
        run.error = failure_reason(result.get_step_failure_events())
    for evaluation in result.get_asset_check_evaluations():
        description = (evaluation.description or "").removeprefix(f"{label}: ")  # the CLI names the session above
        run.checks.append((evaluation.check_name, evaluation.passed, description,
                           evaluation.severity.value))
    if result.is_node_success("qc_metrics"):
        metadata = result.asset_materializations_for_node("qc_metrics")[0].metadata
        run.qc = {key: value.value for key, value in metadata.items() if key in ("measured", "failed", "problems")}
    for key in ("nifti", "series_index"):  # the furthest step that finished
        if result.is_node_success(key):
            run.series = result.output_for_node(key)
            break
    run.health = judge_finished_run(instance, datman, result.run_id, label, run.error)
    return run
