"""The sensor that tells a lab not watching the UI about sessions that need a person and scanner
software upgrades (the work is pipeline/alerts.py, shared with `datman-flow alerts`)."""

import os

import dagster as dg

from datman_flow.alerts import AlertConfigError
from datman_flow.defs.metadata import log_all
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline.alerts import alert_step

ALERT_SECONDS = 60


@dg.sensor(minimum_interval_seconds=ALERT_SECONDS, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Posts one message per event to DATMAN_ALERT_WEBHOOK (Slack/Teams) and/or mails it through "
                       "DATMAN_SMTP_HOST: a session whose health is attention or failed, a scanner software upgrade, a "
                       "picture rated FAIL or a series blacklisted by a reviewer. "
                       "What was sent is kept in <data>/state/alerts_sent.json.")
def session_alerts(context: dg.SensorEvaluationContext, datman: DatmanSettings):
    try:
        report = alert_step(datman.layout(), os.environ)
    except AlertConfigError as exc:
        return dg.SkipReason(f"alerts not sent, a setting is invalid (fix it and the next tick goes on): {exc}")
    log_all(context.log, report.warnings())
    return dg.SkipReason(report.summary())
