"""The sensor that notices new sessions on XNAT and requests one run per session, and runs
again, after a growing delay, the sessions whose transfer from XNAT failed (the watching
itself is pipeline/watch.py, shared with `datman-flow ingest --new`)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from datman_flow.config import ConfigError
from datman_flow.defs.jobs import ingest_session_job
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings, XnatResource
from datman_flow.defs.study_assets import refresh_study_views_job
from datman_flow.pipeline import watch
from datman_flow.pipeline.locks import is_locked
from datman_flow.pipeline.resolve import SessionRejected, resolve_session
from datman_flow.pipeline.retry import RETRY_TAG
from datman_flow.pipeline.run_tags import is_backfill, session_run_tags
from datman_flow.xnat import XnatError

POLL_SECONDS = 30
SOURCE_TAG = {"datman/source": "sensor"}
CHANGED_TAG = "datman/changed_on_xnat"  # a session run again because its scans changed on XNAT
ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
          dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def report_finished_runs(context: dg.SensorEvaluationContext, datman: DatmanSettings, state: watch.WatchState,
                         now: datetime) -> None:
    """Report the sensor's runs that finished since the last tick (a retry is booked for each
    whose transfer from XNAT failed). The first tick looks back no further than itself."""
    book = state.retries
    if not book.runs_after:
        book.runs_after = now.isoformat()
        return
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(tags=SOURCE_TAG, updated_after=datetime.fromisoformat(book.runs_after),
                              statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]),
        order_by="update_timestamp", ascending=True, limit=200)
    layout, delays = datman.layout(), tuple(datman.retry_delays_minutes)
    for rec in records:
        finished = rec.update_timestamp.astimezone(UTC)
        book.runs_after = max(datetime.fromisoformat(book.runs_after), finished).isoformat()
        label = rec.dagster_run.tags.get("dagster/partition", "")
        attempts = int(rec.dagster_run.tags.get(RETRY_TAG, "0") or 0)
        note = watch.finished(state, layout, label, attempts, now, delays) if label else None
        if note:
            (context.log.warning if note.gave_up else context.log.info)(note.message)


def retry_tags(config, label: str) -> dict[str, str]:
    """A retry's queue tags: its XNAT server, at an arrival's priority (it is late already)."""
    try:
        target = resolve_session(config, label)
    except SessionRejected:  # its configuration changed meanwhile: the run itself says why
        return {}
    return session_run_tags(target.study.xnat.url, config.runs, backfill=False)


@dg.sensor(jobs=[ingest_session_job, refresh_study_views_job], minimum_interval_seconds=POLL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Polls every configured XNAT project for sessions inserted since the cursor; "
                       "runs again, after 10, 30 and 90 minutes, sessions whose transfer from XNAT failed.")
def new_xnat_sessions(context: dg.SensorEvaluationContext, datman: DatmanSettings, xnat: XnatResource):
    try:
        config = datman.load_config()
    except ConfigError as exc:
        return dg.SkipReason(f"configuration is invalid, fix it and the next tick goes on:\n{exc}")
    state = watch.WatchState.from_json(context.cursor)
    now = datetime.now(UTC)
    report_finished_runs(context, datman, state, now)
    def is_active(label: str) -> bool:
        return is_locked(datman.layout(), label) or bool(context.instance.get_run_records(
            filters=dg.RunsFilter(tags={"dagster/partition": label}, statuses=ACTIVE), limit=1))

    try:
        found = watch.look(config, state, xnat.lister, datman.layout(), now,
                           stuck_after=timedelta(minutes=datman.stuck_after_minutes), is_active=is_active,
                           settle=datman.settle())
    except XnatError as exc:
        context.update_cursor(state.to_json())  # retries wait for XNAT too
        return dg.SkipReason(f"XNAT unavailable or answering garbage, tick skipped: {exc}")
    for line in found.errors + found.stuck:
        context.log.warning(line)
    for rejected in found.rejected:
        exp = rejected.experiment
        context.log.warning(f"session {exp.label!r} ({exp.project}) not ingested: {rejected.reason}")
    board = [dg.RunRequest(run_key="board-after-" + ",".join(sorted(r.experiment.label for r in found.rejected)),
                           job_name=refresh_study_views_job.name)] if found.rejected else []
    if not found.new and not found.retries and not board:
        context.update_cursor(state.to_json())
        problems = "".join(f"; {error}" for error in found.errors)
        waiting = f", {len(state.retries.due)} retry(ies) waiting" if state.retries.due else ""
        waiting += f", {len(found.pending)} settling on XNAT" if found.pending else ""
        return dg.SkipReason(f"no new sessions ({found.listed} listed, {len(found.rejected)} rejected"
                             f"{waiting}){problems}")
    labels = [new.target.label for new in found.new]
    # one query for the partitions there are, not one per label: a first tick over 10,000 sessions
    # asked PostgreSQL 10,000 times (two connections each), 400 s (benchmarks/soak.py)
    known = set(context.instance.get_dynamic_partitions(SESSIONS.name)) if labels else set()
    new_labels = list(dict.fromkeys(label for label in labels if label not in known))
    runs = [dg.RunRequest(run_key=new.run_key, partition_key=new.target.label, job_name=ingest_session_job.name,
                          tags={**SOURCE_TAG, "xnat_id": new.experiment.id,
                                **session_run_tags(new.target.study.xnat.url, config.runs,
                                                   backfill=not new.changed and is_backfill(new.experiment,
                                                                                            config.runs, now)),
                                **({CHANGED_TAG: "true"} if new.changed else {})}) for new in found.new]
    runs += [dg.RunRequest(run_key=f"{label}#retry{attempt}", partition_key=label, job_name=ingest_session_job.name,
                           tags={**SOURCE_TAG, RETRY_TAG: str(attempt), **retry_tags(config, label)})
             for label, attempt in found.retries]
    return dg.SensorResult(
        run_requests=runs + board,
        dynamic_partitions_requests=[SESSIONS.build_add_request(new_labels)] if new_labels else [],
        cursor=state.to_json(),
    )
