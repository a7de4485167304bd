"""Moving a lab's Dagster history from one instance to another (SQLite files under one
DAGSTER_HOME to PostgreSQL, or one PostgreSQL to another): `datman-flow instance move`.

What datman-flow needs from Dagster's history is copied, so that the new instance carries on
where the old one stopped instead of ingesting every session on XNAT again:
- the sensors' state and cursors (new_xnat_sessions' cursor knows which sessions were seen,
  settled and retried; the review and alert sensors' cursors know what was handled);
- the `sessions` partitions;
- every finished run with its events (materializations with their metadata, check results,
  logs), as Dagster's own `dagster debug export`/`import` copy one run: the UI shows each
  session's history as before.

Refused while the old instance has runs queued or in progress (stop the daemon first: a run
moving while it runs would be half in each). Runs already in the new instance are skipped (one a
stopped move left with part of its events gets the rest), so a move that stopped half way is
finished by running it again. Nothing is removed from the old one.
The data folder (raw/, nii/, the metric store) is not Dagster's and does not move."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from datman_flow.defs.partitions import SESSIONS

NOT_FINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
BATCH = 200


class MoveRefused(RuntimeError):
    """The move cannot start (the reason says why and what to do)."""


@dataclass
class Moved:
    runs: int = 0
    runs_already_there: int = 0
    events: int = 0
    partitions: int = 0
    sensor_states: int = 0


def move_history(old: dg.DagsterInstance, new: dg.DagsterInstance) -> Moved:
    busy = old.get_run_records(filters=dg.RunsFilter(statuses=NOT_FINISHED), limit=5)
    if busy:
        names = ", ".join(f"{r.dagster_run.run_id[:8]} ({r.dagster_run.status.value})" for r in busy)
        raise MoveRefused(f"the old instance has runs not finished ({names}): stop the Dagster daemon, wait for "
                          "them or terminate them in the UI, then move")
    moved = Moved()
    labels = [label for label in old.get_dynamic_partitions(SESSIONS.name)
              if not new.has_dynamic_partition(SESSIONS.name, label)]
    if labels:
        new.add_dynamic_partitions(SESSIONS.name, labels)
    moved.partitions = len(labels)
    for state in old.all_instigator_state():
        if new.get_instigator_state(state.instigator_origin_id, state.selector_id) is None:
            new.add_instigator_state(state)
        else:
            new.update_instigator_state(state)
        moved.sensor_states += 1
    cursor = None
    while True:  # oldest first, so the new instance's run order is the old one's
        records = old.get_run_records(limit=BATCH, cursor=cursor, ascending=True)
        if not records:
            break
        for record in records:
            copy_run(old, new, record.dagster_run, moved)
        cursor = records[-1].dagster_run.run_id
    return moved


def copy_run(old: dg.DagsterInstance, new: dg.DagsterInstance, run: dg.DagsterRun, moved: Moved) -> None:
    """One run and its events; a run a stopped move left with part of its events gets the rest."""
    events = old.all_logs(run.run_id)
    if new.has_run(run.run_id):
        have = len(new.all_logs(run.run_id))
        if have >= len(events):
            moved.runs_already_there += 1
            return
        events = events[have:]
    else:
        for snapshot_id, read in ((run.job_snapshot_id, old.get_job_snapshot),
                                  (run.execution_plan_snapshot_id, old.get_execution_plan_snapshot)):
            if snapshot_id and not new.has_snapshot(snapshot_id):
                new.add_snapshot(read(snapshot_id))
        new.add_run(run)
    for event in events:
        new.store_event(event)
    moved.runs += 1
    moved.events += len(events)
