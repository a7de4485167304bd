"""When a session's run has finished (succeeded or failed): judge its health, tag the run and
report the verdict on its partition (health.py), then refresh the study-wide views
(compliance, trends, the operator's board)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from datman_flow.config import ConfigError
from datman_flow.config.runs_block import RunSettings
from datman_flow.defs.health import judge_finished_run
from datman_flow.defs.jobs import ingest_session_job
from datman_flow.defs.resources import DatmanSettings
from datman_flow.defs.study_assets import refresh_study_views_job


def failure_reason(events: list[dg.DagsterEvent]) -> str:
    """The first failed step and the error it raised (the innermost cause: the part a person reads)."""
    for event in events:
        err = event.step_failure_data.error if event.step_failure_data else None
        if err is None:
            continue
        while err.cause is not None:
            err = err.cause
        return f"{event.step_key}: {err.message.strip()}"
    return "the run failed"


WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
ACTIVE = [*WAITING, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def no_refresh_needed(instance: dg.DagsterInstance, every: timedelta, now: datetime) -> str:
    """Why this finished run needs no refresh of its own ('' when it does):
    - one is waiting in the queue: it has not read the store yet, so it will see this run's rows;
    - one was asked for less than `every` ago and other session runs are queued or in progress:
      the last of those asks again (each refresh reads the whole store: in a burst of hundreds,
      one per session would take a core for the refreshes alone)."""
    def refreshes(**where) -> bool:
        return bool(instance.get_run_records(filters=dg.RunsFilter(job_name=refresh_study_views_job.name, **where),
                                             limit=1))

    if refreshes(statuses=WAITING):
        return "the study views' refresh waiting in the queue will include this run"
    if every > timedelta(0) and refreshes(created_after=now - every) and instance.get_run_records(
            filters=dg.RunsFilter(job_name=ingest_session_job.name, statuses=ACTIVE), limit=1):
        return (f"the study views were refreshed less than {every.total_seconds() / 60:g} min ago and other session "
                "runs are in progress: the last of them refreshes them")
    return ""


def refresh_every(datman: DatmanSettings) -> timedelta:
    """runs.yml's refresh_every_minutes (its default when the configuration does not load: the run
    that just finished has said why already)."""
    try:
        runs = datman.load_config().runs
    except ConfigError:
        runs = RunSettings()
    return timedelta(minutes=runs.refresh_every_minutes)


def after_run(context: dg.RunStatusSensorContext, datman: DatmanSettings, run_error: str) -> dg.RunRequest | None:
    run = context.dagster_run
    label = run.tags.get("dagster/partition", "")
    if label:
        health = judge_finished_run(context.instance, datman, run.run_id, label, run_error)
        context.log.info(f"{label}: {health}")
    why_not = no_refresh_needed(context.instance, refresh_every(datman), datetime.now(UTC))
    if why_not:
        context.log.info(why_not)
        return None
    return dg.RunRequest(run_key=f"after-{run.run_id}")


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_session_job],
                      request_job=refresh_study_views_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      minimum_interval_seconds=10,
                      description="judges a session's health when its run has succeeded, then refreshes the "
                                  "study-wide views")
def judge_after_success(context: dg.RunStatusSensorContext, datman: DatmanSettings):
    return after_run(context, datman, "")


@dg.run_failure_sensor(monitored_jobs=[ingest_session_job], request_job=refresh_study_views_job,
                       default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=10,
                       description="records a failed session run as health `failed`, with the error, then "
                                   "refreshes the study-wide views")
def judge_after_failure(context: dg.RunFailureSensorContext, datman: DatmanSettings):
    return after_run(context, datman, failure_reason(context.get_step_failure_events())
                     or context.failure_event.message or "the run failed")
