"""The sensor that notices new sessions on XNAT and requests one run per session."""


import dagster as dg

from datman_flow.config import ConfigError
from datman_flow.defs.jobs import ingest_session_job
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline import record
from datman_flow.pipeline.poll import PollCursor, poll_new_sessions
from datman_flow.xnat import XnatClient, XnatError

POLL_SECONDS = 30


@dg.sensor(job=ingest_session_job, minimum_interval_seconds=POLL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Polls every configured XNAT project for sessions inserted since the cursor.")
def new_xnat_sessions(context: dg.SensorEvaluationContext, datman: DatmanSettings):
    try:
        config = datman.load_config()
    except ConfigError as exc:
        return dg.SkipReason(f"configuration is invalid, fix it and the next tick goes on:\n{exc}")
    cursor = PollCursor.from_json(context.cursor)
    try:
        result = poll_new_sessions(config, cursor, XnatClient.from_env)
    except XnatError as exc:
        return dg.SkipReason(f"XNAT unavailable or answering garbage, tick skipped: {exc}")
    layout = datman.layout()
    for error in result.errors:
        context.log.warning(error)
    for rejected in result.rejected:
        exp = rejected.experiment
        context.log.warning(f"session {exp.label!r} ({exp.project}) not ingested: {rejected.reason}")
        record.record_session(layout, record.rejected_record(exp.label, exp.project, exp.id, exp.insert_date,
                                                             rejected.reason))
    labels = [new.target.label for new in result.new]
    new_labels = [label for label in labels if not context.instance.has_dynamic_partition(SESSIONS.name, label)]
    if not labels:
        context.update_cursor(result.cursor.to_json())
        problems = "".join(f"; {error}" for error in result.errors)
        return dg.SkipReason(f"no new sessions ({result.listed} listed, {len(result.rejected)} rejected){problems}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=label, partition_key=label, tags={"xnat_id": new.experiment.id})
                      for label, new in zip(labels, result.new)],
        dynamic_partitions_requests=[SESSIONS.build_add_request(new_labels)] if new_labels else [],
        cursor=result.cursor.to_json(),
    )
