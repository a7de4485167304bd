"""The sensor that notices new sessions on XNAT and requests one run per session, and runs
again, after a growing delay, the sessions whose transfer from XNAT failed."""

from datetime import datetime, timezone

import dagster as dg

from datman_flow.config import ConfigError
from datman_flow.defs.jobs import ingest_session_job
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline import record
from datman_flow.pipeline.poll import PollCursor, poll_new_sessions
from datman_flow.pipeline.retry import RETRY_TAG, RetryBook, join_cursor, split_cursor, transfer_trouble
from datman_flow.xnat import XnatClient, XnatError

POLL_SECONDS = 30
SOURCE_TAG = {"datman/source": "sensor"}


def book_retries(context: dg.SensorEvaluationContext, datman: DatmanSettings, book: RetryBook,
                 now: datetime) -> None:
    """Look at the sensor's runs that finished since the last tick; book a retry for each whose
    transfer from XNAT failed, or log that the retries are used up. The first tick looks back
    no further than itself."""
    if not book.runs_after:
        book.runs_after = now.isoformat()
        return
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(tags=SOURCE_TAG, updated_after=datetime.fromisoformat(book.runs_after),
                              statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]),
        order_by="update_timestamp", ascending=True, limit=200)
    layout = datman.layout()
    for rec in records:
        finished = rec.update_timestamp.astimezone(timezone.utc)
        book.runs_after = max(datetime.fromisoformat(book.runs_after), finished).isoformat()
        run = rec.dagster_run
        label = run.tags.get("dagster/partition", "")
        trouble = transfer_trouble(layout, label) if label else None
        if not trouble or label in book.due:
            continue
        attempts = int(run.tags.get(RETRY_TAG, "0") or 0)
        when = book.schedule(label, attempts, now, tuple(datman.retry_delays_minutes))
        if when is None:
            context.log.warning(f"session {label!r}: {trouble}; given up after {attempts} retries "
                                f"(re-execute it from the UI once XNAT is fine)")
        else:
            context.log.info(f"session {label!r}: {trouble}; retry {attempts + 1} at {when:%H:%M} UTC")


@dg.sensor(job=ingest_session_job, minimum_interval_seconds=POLL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Polls every configured XNAT project for sessions inserted since the cursor; "
                       "runs again, after 10, 30 and 90 minutes, sessions whose transfer from XNAT failed.")
def new_xnat_sessions(context: dg.SensorEvaluationContext, datman: DatmanSettings):
    try:
        config = datman.load_config()
    except ConfigError as exc:
        return dg.SkipReason(f"configuration is invalid, fix it and the next tick goes on:\n{exc}")
    poll_json, book = split_cursor(context.cursor)
    cursor = PollCursor.from_json(poll_json)
    now = datetime.now(timezone.utc)
    book_retries(context, datman, book, now)
    try:
        result = poll_new_sessions(config, cursor, XnatClient.from_env)
    except XnatError as exc:
        context.update_cursor(join_cursor(cursor.to_json(), book))  # retries wait for XNAT too
        return dg.SkipReason(f"XNAT unavailable or answering garbage, tick skipped: {exc}")
    retries = [dg.RunRequest(run_key=f"{label}#retry{attempt}", partition_key=label,
                             tags={**SOURCE_TAG, RETRY_TAG: str(attempt)})
               for label, attempt in book.take_due(now)]
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
    if not labels and not retries:
        context.update_cursor(join_cursor(result.cursor.to_json(), book))
        problems = "".join(f"; {error}" for error in result.errors)
        waiting = f", {len(book.due)} retry(ies) waiting" if book.due else ""
        return dg.SkipReason(f"no new sessions ({result.listed} listed, {len(result.rejected)} rejected"
                             f"{waiting}){problems}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=label, partition_key=label, tags={**SOURCE_TAG, "xnat_id": new.experiment.id})
                      for label, new in zip(labels, result.new)] + retries,
        dynamic_partitions_requests=[SESSIONS.build_add_request(new_labels)] if new_labels else [],
        cursor=join_cursor(result.cursor.to_json(), book),
    )
