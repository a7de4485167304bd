"""The one Definitions object of the code location (`dagster dev -w workspace.yaml`)."""

import dagster as dg

from datman_flow.defs.after_run import judge_after_failure, judge_after_success
from datman_flow.defs.alert_sensor import session_alerts
from datman_flow.defs.health import SESSION_HEALTH
from datman_flow.defs.jobs import ingest_session_job, review_session_job
from datman_flow.defs.resources import DatmanSettings, xnat_from_env
from datman_flow.defs.review_sensor import review_changes
from datman_flow.defs.sensors import new_xnat_sessions
from datman_flow.defs.session_assets import SESSION_ASSETS
from datman_flow.defs.study_assets import protocol_compliance, refresh_study_views_job, sessions_board
from datman_flow.defs.trend_assets import qc_trends

# The in-process executor: a session's steps run one after the other anyway, and the
# multiprocess executor costs seconds of process start-up per step (see benchmarks/).
defs = dg.Definitions(
    assets=[*SESSION_ASSETS, SESSION_HEALTH, protocol_compliance, qc_trends, sessions_board],
    jobs=[ingest_session_job, review_session_job, refresh_study_views_job],
    sensors=[new_xnat_sessions, judge_after_success, judge_after_failure, session_alerts, review_changes],
    resources={"datman": DatmanSettings(), "xnat": xnat_from_env()},
    executor=dg.in_process_executor,
)
