"""The tags of a session's run that Dagster's run queue acts on (dagster.yaml from
instance_yaml.py): which XNAT server it pulls from (at most `pulls_per_xnat` runs per server in
progress) and its priority (fresh arrivals before backfills)."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from datman_flow.config.runs_block import RunSettings
from datman_flow.instance_yaml import PRIORITY_TAG, XNAT_TAG
from datman_flow.xnat.models import Experiment


def xnat_server(url: str) -> str:
    """The server part of an XNAT URL, as the run queue counts it: `host[:port]`, lower case,
    never a user or password."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    return f"{host}:{port}" if port else host


def is_backfill(exp: Experiment | None, runs: RunSettings, now: datetime) -> bool:
    """A session already older than `backfill_after_hours` when the sensor first sees it: one of a
    backfill (a new project, the sensor's first tick, a sensor switched off for days), not an
    arrival. XNAT's insert_date is the server's local time, taken as UTC here: a difference of
    time zones (at most 14 h) stays inside the default 24 h."""
    inserted = exp.inserted_at if exp is not None else None
    if inserted is None:
        return False
    return now.replace(tzinfo=None) - inserted > timedelta(hours=runs.backfill_after_hours)


def session_run_tags(xnat_url: str, runs: RunSettings, *, backfill: bool) -> dict[str, str]:
    priority = runs.backfill_priority if backfill else runs.arrival_priority
    return {XNAT_TAG: xnat_server(xnat_url), PRIORITY_TAG: str(priority)}
