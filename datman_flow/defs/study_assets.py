"""Study-wide views, unpartitioned, refreshed after every session run (after_run.py)."""

import dagster as dg

from datman_flow.defs.jobs import k8s_tags
from datman_flow.defs.metadata import log_all, metadata
from datman_flow.defs.resources import DatmanSettings
from datman_flow.defs.trend_assets import qc_trends
from datman_flow.instance_yaml import REFRESH_TAG
from datman_flow.pipeline.board import board_step
from datman_flow.pipeline.compliance import compliance_step


@dg.asset(group_name="study", kinds={"duckdb"}, deps=["nifti"])
def protocol_compliance(context: dg.AssetExecutionContext, datman: DatmanSettings) -> dg.MaterializeResult:
    """Per study, site and tag: sessions that comply with the gold standard, the parameters that
    drifted, and the first session in which each changed (software upgrades first)."""
    reports = compliance_step(datman.load_config(), datman.layout())
    log_all(context.log, reports.upgrade_warnings())
    return dg.MaterializeResult(metadata=metadata(reports.metadata()))


@dg.asset(group_name="study", kinds={"duckdb"}, deps=["nifti", "session_review"])
def sessions_board(datman: DatmanSettings) -> dg.MaterializeResult:
    """The operator's to-do board: the sessions that need a person, newest first (refused labels,
    failed runs and transfers, reviews that failed, missing series, header drift with software
    upgrades first, QC outliers), each with what to do next. A session a reviewer signed off after
    its latest run leaves the board (its problems were seen by a person); a failed review stays
    until signed off after its latest finding. Refreshed after every session run, on refused
    labels and when a review changes (review_changes sensor)."""
    return dg.MaterializeResult(metadata=metadata(board_step(datman.layout(), datman.review_base_url()).metadata()))


# The study-wide views, refreshed after every session run (after_run.py) and when the sensor
# refuses a label (sensors.py); the board alone when a review changes (review_sensor.py). The
# queue runs one at a time (REFRESH_TAG's limit in the instance's dagster.yaml).
refresh_study_views_job = dg.define_asset_job("refresh_study_views",
                                              selection=[protocol_compliance, qc_trends, sessions_board],
                                              tags={**k8s_tags("refresh_study_views"), REFRESH_TAG: "study-views"})

