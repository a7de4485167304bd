"""Study-wide views, unpartitioned, refreshed after every successful session run."""

import dagster as dg

from datman_flow.defs.jobs import ingest_session_job
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline.compliance import compliance_markdown, study_compliance


@dg.asset(group_name="study", kinds={"duckdb"}, deps=["nifti"])
def protocol_compliance(context: dg.AssetExecutionContext, datman: DatmanSettings) -> dg.MaterializeResult:
    """Per study, site and tag: sessions that comply with the gold standard, the parameters that
    drifted, and the first session in which each changed (software upgrades first)."""
    config = datman.load_config()
    layout = datman.layout()
    metadata: dict[str, object] = {}
    drifted = 0
    for code in sorted(config.studies):
        report = study_compliance(layout.metrics_db, layout.store, code)
        drifted += sum(len(entry.drifts) for entry in report)
        metadata[code] = dg.MetadataValue.md(compliance_markdown(report))
        upgrades = [(e, d) for e in report for d in e.drifts if d.kind == "software_upgrade"]
        for entry, drift in upgrades:
            context.log.warning(f"{code} {entry.site} {entry.tag}: software upgrade {drift.expected} -> "
                                f"{drift.actual}, first in {drift.first_session} ({drift.first_date})")
    metadata["drifted_parameters"] = drifted
    return dg.MaterializeResult(metadata=metadata)


refresh_compliance_job = dg.define_asset_job("refresh_compliance", selection=[protocol_compliance])


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_session_job],
                      request_job=refresh_compliance_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="refreshes protocol_compliance when a session has landed")
def compliance_after_ingest(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"after-{context.dagster_run.run_id}")
