"""`datman-flow alerts [--dry-run]`: one alert step, as the `session_alerts` sensor does it, for
labs that run datman-flow from cron rather than under the Dagster daemon."""

from __future__ import annotations

import argparse
import os
import sys

from datman_flow.layout import DataLayout, data_dir_from


def add_alerts_command(sub: argparse._SubParsersAction, add_dirs) -> None:
    alerts = sub.add_parser("alerts", help="send the alerts not sent yet (sessions needing a person, scanner "
                                           "software upgrades) to DATMAN_ALERT_WEBHOOK and/or by e-mail")
    alerts.add_argument("--dry-run", action="store_true", help="list what would be sent; send and record nothing")
    add_dirs(alerts)
    alerts.set_defaults(func=alerts_command)


def alerts_command(args: argparse.Namespace) -> int:
    """Exit 0 when everything due was accepted (or nothing was due), 1 when a destination failed
    (it is tried again next time), 2 when no destination is configured or a setting is invalid."""
    from datman_flow.alerts import AlertConfigError
    from datman_flow.cli.render import alert_report_lines
    from datman_flow.pipeline.alerts import alert_step

    layout = DataLayout(data_dir_from(args.data_dir))
    try:
        report = alert_step(layout, os.environ, dry_run=args.dry_run)
    except AlertConfigError as exc:
        print(f"alerts: {exc}", file=sys.stderr)
        return 2
    if not report.destinations:
        print(f"alerts: {report.summary()}", file=sys.stderr)
        return 2
    out, err = alert_report_lines(report)
    for line in err:
        print(line, file=sys.stderr)
    for line in out:
        print(line)
    return 1 if report.failed or report.gave_up else 0
