"""Each session's health verdict in the UI: a run tag (the Runs list shows it) and a reported
materialization of the `session_health` partition with the reasons, when the session's run has
finished (by the after-run sensors or by the CLI's runner), whether it succeeded or failed.
(The `healthy` check of `qc_metrics` shows the same verdict on the partition of a run that got
that far; the verdict itself is pipeline/health.py's.)

Why not a check on `session_health` reported after the run: Dagster 1.13 stores one runless
evaluation per partition and check (a second one, after a re-run, breaks a unique key)."""

import dagster as dg

from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline.health import Health, health_step

HEALTH_TAG = "datman/health"
REASONS_TAG = "datman/health_reasons"
TAG_LIMIT = 1000  # characters of reasons kept in the run tag (the asset's metadata has them all)

SESSION_HEALTH = dg.AssetSpec(
    "session_health", partitions_def=SESSIONS, group_name="session", deps=["qc_metrics"], kinds={"duckdb"},
    description="Each session's verdict once its run has finished: ok, attention (missing or extra series, "
                "header drift, QC outliers, a series that failed to download, convert or measure) or failed, "
                "with the reasons. Reported by the sensor after each run (or by `datman-flow ingest`).")


def report_health(instance: dg.DagsterInstance, run_id: str, label: str, health: Health) -> None:
    """Tag the run and report the verdict on the session's partition."""
    tags = {HEALTH_TAG: health.verdict}
    if health.line:  # an ok run carries no empty reasons tag
        tags[REASONS_TAG] = health.line[:TAG_LIMIT]
    instance.add_run_tags(run_id, tags)
    metadata = {"health": health.verdict, "reasons": dg.MetadataValue.md(
        "\n".join(f"- {r}" for r in health.reasons) or "none"), "run_id": run_id}
    instance.report_runless_asset_event(dg.AssetMaterialization(SESSION_HEALTH.key, partition=label,
                                                                metadata=metadata))


def judge_finished_run(instance: dg.DagsterInstance, datman: DatmanSettings, run_id: str, label: str,
                       run_error: str = "") -> Health:
    """Judge a session whose run has finished, record the verdict and report it."""
    health = health_step(datman.layout(), label, run_error)
    report_health(instance, run_id, label, health)
    return health
