"""Each session's health verdict in the UI: a run tag (the Runs list shows it), a reported
materialization of the `session_health` partition with the reasons, and the result of its
`healthy` check (WARN for attention, ERROR for failed), so the partition and the catalog show
which sessions need a person. Reported when the session's run has finished, by the sensor
(sensors.py) or by the CLI's runner; the verdict itself is pipeline/health.py's."""

import dagster as dg

from datman_flow.defs.partitions import SESSIONS, partitioned_checks
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline.health import ATTENTION, OK, Health, health_step, judge, read_facts

HEALTH_TAG = "datman/health"
REASONS_TAG = "datman/health_reasons"
TAG_LIMIT = 1000  # characters of reasons kept in the run tag (the asset's metadata has them all)

SESSION_HEALTH = dg.AssetSpec(
    "session_health", partitions_def=SESSIONS, group_name="session", deps=["qc_metrics"], kinds={"duckdb"},
    description="Each session's verdict once its run has finished: ok, attention (missing or extra series, "
                "header drift, QC outliers, a series that failed to download, convert or measure) or failed, "
                "with the reasons. Reported by the sensor after each run (or by `datman-flow ingest`).")


def severity(health: Health) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.WARN if health.verdict == ATTENTION else dg.AssetCheckSeverity.ERROR


def check_result(label: str, health: Health) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name="healthy", passed=health.verdict == OK, severity=severity(health),
                               description=f"{label}: {health}", metadata={"health": health.verdict})


def judge_again(context: dg.AssetCheckExecutionContext, datman: DatmanSettings) -> dg.AssetCheckResult:
    label = context.partition_key
    return check_result(label, judge(read_facts(datman.layout(), label)))


with partitioned_checks():
    healthy = dg.asset_check(
        asset=SESSION_HEALTH.key, name="healthy", partitions_def=SESSIONS,
        description="the session needs no person: its verdict is ok (run it to judge a session again from the "
                    "metric store)")(judge_again)


def report_health(instance: dg.DagsterInstance, run_id: str, label: str, health: Health) -> None:
    """Tag the run and report the verdict on the session's partition."""
    instance.add_run_tags(run_id, {HEALTH_TAG: health.verdict, REASONS_TAG: health.line[:TAG_LIMIT]})
    metadata = {"health": health.verdict, "reasons": dg.MetadataValue.md(
        "\n".join(f"- {r}" for r in health.reasons) or "none"), "run_id": run_id}
    instance.report_runless_asset_event(dg.AssetMaterialization(SESSION_HEALTH.key, partition=label,
                                                                metadata=metadata))
    result = check_result(label, health)
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=SESSION_HEALTH.key, check_name=result.check_name or "healthy", passed=result.passed,
        severity=result.severity, description=result.description, metadata=result.metadata, partition=label))


def judge_finished_run(instance: dg.DagsterInstance, datman: DatmanSettings, run_id: str, label: str,
                       run_error: str = "") -> Health:
    """Judge a session whose run has finished, record the verdict and report it."""
    health = health_step(datman.layout(), label, run_error)
    report_health(instance, run_id, label, health)
    return health
