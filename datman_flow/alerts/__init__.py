"""Alerts for labs that do not sit in front of the UI: the events (events.py), where they go
(destinations.py, from the environment), sending (send.py) and what has been sent (ledger.py).
The step that ties them together is pipeline/alerts.py. No Dagster here."""

from datman_flow.alerts.destinations import NO_DESTINATION, AlertConfigError, Destination, Smtp, Webhook
from datman_flow.alerts.events import AlertEvent, alertable_events
from datman_flow.alerts.ledger import LEDGER_FILE, Ledger

__all__ = ["LEDGER_FILE", "NO_DESTINATION", "AlertConfigError", "AlertEvent", "Destination", "Ledger", "Smtp",
           "Webhook", "alertable_events"]
