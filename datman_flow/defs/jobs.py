"""The job the sensor and the CLI run: every per-session asset and its checks for one partition."""

import dagster as dg

ingest_session_job = dg.define_asset_job(
    "ingest_session",
    selection=dg.AssetSelection.groups("session"),
    description="Pull one session from XNAT, index and tag its series, convert them, check the counts.",
)
