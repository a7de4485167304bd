"""The sensor that brings reviewers' decisions into Dagster without a restart: every 15 s it
lists the review tables' folders (pipeline/review_changes.py) and asks for a `review_session`
run of each session whose ratings, clicks, sign-offs or series decisions changed, so its
`review` check shows the new state within a tick; and for the board to be drawn again."""

import dagster as dg

from datman_flow.defs.jobs import review_session_job
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings
from datman_flow.defs.study_assets import refresh_study_views_job, sessions_board
from datman_flow.pipeline.review_changes import ReviewCursor, changes_since, review_files

REVIEW_SECONDS = 15
SOURCE_TAG = {"datman/source": "review"}
LISTED = 5  # names shown in a log line


def listed(names: list[str]) -> str:
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


@dg.sensor(jobs=[review_session_job, refresh_study_views_job], minimum_interval_seconds=REVIEW_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Lists the review tables' folders (ratings, rating_coordinates, review_signoffs, "
                       "series_decisions) and runs review_session for each session whose file changed since the "
                       "cursor, then the board: a rating, sign-off or blacklist shows on the partition within a tick.")
def review_changes(context: dg.SensorEvaluationContext, datman: DatmanSettings):
    cursor = ReviewCursor.from_json(context.cursor)
    found = changes_since(review_files(datman.layout().metric_store.parquet_dir), cursor)
    if found.ignored:
        context.log.warning(f"{len(found.ignored)} file(s) in the review tables not named for a session, ignored: "
                            f"{listed(list(found.ignored))}")
    if not found.changed:
        return dg.SensorResult(skip_reason="no review changed since the last look", cursor=found.cursor.to_json())
    known = set(context.instance.get_dynamic_partitions(SESSIONS.name))
    unknown = sorted(label for label in found.changed if label not in known)
    if unknown:
        context.log.warning(f"reviews changed for {len(unknown)} session(s) Dagster has no partition of (ingested "
                            f"without this instance?), not evaluated: {listed(unknown)}")
    runs = [dg.RunRequest(run_key=f"review-{label}-{mtime}", partition_key=label, job_name=review_session_job.name,
                          tags=SOURCE_TAG) for label, mtime in sorted(found.changed.items()) if label in known]
    board = dg.RunRequest(run_key=f"board-review-{found.cursor.mtime_ns}", job_name=refresh_study_views_job.name,
                          asset_selection=[sessions_board.key], tags=SOURCE_TAG)
    if found.more:
        context.log.info(f"{len(found.changed)} session(s) taken this tick; more changed, taken on the next")
    return dg.SensorResult(run_requests=[*runs, board], cursor=found.cursor.to_json())
