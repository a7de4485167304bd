"""When a session's run has finished (succeeded or failed): judge its health, tag the run and
report the verdict on its partition (health.py), then refresh the study-wide views
(compliance, trends, the operator's board)."""

from __future__ import annotations

import dagster as dg

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


def refresh_after(instance: dg.DagsterInstance, run_id: str) -> dg.RunRequest | None:
    """A refresh of the study views after this run, unless one is waiting in the queue already:
    it has not read the store yet, so it will see this run's rows. A burst of 200 sessions then
    costs a few refreshes, not 200 runs competing with the sessions' for the queue."""
    waiting = instance.get_run_records(filters=dg.RunsFilter(job_name=refresh_study_views_job.name, statuses=WAITING),
                                       limit=1)
    return None if waiting else dg.RunRequest(run_key=f"after-{run_id}")


def after_run(context: dg.RunStatusSensorContext, datman: DatmanSettings, run_error: str) -> dg.RunRequest | None:
    run = context.dagster_run
    label = run.tags.get("dagster/partition", "")
    if label:
        health = judge_finished_run(context.instance, datman, run.run_id, label, run_error)
        context.log.info(f"{label}: {health}")
    request = refresh_after(context.instance, run.run_id)
    if request is None:
        context.log.info("the study views' refresh waiting in the queue will include this run")
    return request


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
