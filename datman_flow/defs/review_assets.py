"""People's review of a session as an asset of its partition: the state (pending, passed,
failed) with its findings and sign-off, and the `review` check. Materialized at the end of each
ingest run and again by the review_session job whenever a reviewer changes something
(review_sensor.py); the work is pipeline/review_state.py's."""

import dagster as dg

from datman_flow.defs.checks import REVIEW_SPEC
from datman_flow.defs.metadata import check_result, metadata
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline.review_links import BadReviewUrl, review_url_from
from datman_flow.pipeline.review_state import read_review
from datman_flow.pipeline.review_summary import review_check, review_metadata


@dg.asset(partitions_def=SESSIONS, group_name="session", deps=["qc_metrics"], kinds={"duckdb"},
          check_specs=[REVIEW_SPEC])
def session_review(context: dg.AssetExecutionContext, datman: DatmanSettings) -> dg.MaterializeResult:
    """The session's review by people in the review app: pending until a reviewer signs it off,
    passed when signed off with nothing failed, failed while a picture's latest rating is FAIL or
    a series is blacklisted; the findings, the latest sign-off and the blacklisted series, and a
    link to the session's page in the review app. Read from the review tables: re-evaluated
    within a tick of the review_changes sensor after each rating, sign-off or decision."""
    try:
        review_url = review_url_from()
    except BadReviewUrl as exc:  # a link is not worth failing the session's run for: said, and left out
        context.log.warning(f"no link to the review app: {exc}")
        review_url = ""
    label = context.partition_key
    state = read_review(datman.layout(), label)
    context.log.info(f"{label}: review {state.state}, {len(state.findings)} finding(s)")
    return dg.MaterializeResult(metadata=metadata(review_metadata(state, review_url)),
                                check_results=[check_result(review_check(state), label)])
