"""Study-wide views, unpartitioned, refreshed after every successful session run."""

import dagster as dg

from datman_flow.defs.jobs import ingest_session_job
from datman_flow.defs.metadata import log_all, metadata
from datman_flow.defs.resources import DatmanSettings
from datman_flow.defs.trend_assets import qc_trends
from datman_flow.pipeline.compliance import compliance_step


@dg.asset(group_name="study", kinds={"duckdb"}, deps=["nifti"])
def protocol_compliance(context: dg.AssetExecutionContext, datman: DatmanSettings) -> dg.MaterializeResult:
    """Per study, site and tag: sessions that comply with the gold standard, the parameters that
    drifted, and the first session in which each changed (software upgrades first)."""
    reports = compliance_step(datman.load_config(), datman.layout())
    log_all(context.log, reports.upgrade_warnings())
    return dg.MaterializeResult(metadata=metadata(reports.metadata()))


refresh_compliance_job = dg.define_asset_job("refresh_compliance", selection=[protocol_compliance, qc_trends])


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_session_job],
                      request_job=refresh_compliance_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="refreshes protocol_compliance when a session has landed")
def compliance_after_ingest(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"after-{context.dagster_run.run_id}")
