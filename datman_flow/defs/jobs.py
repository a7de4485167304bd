"""The job the sensor and the CLI run: every per-session asset and its checks for one partition."""

import dagster as dg

ingest_session_job = dg.define_asset_job(
    "ingest_session",
    # the session's assets and their checks (session_health is reported after the run, not run)
    selection=dg.AssetSelection.assets("raw_dicom", "series_index", "nifti", "qc_metrics"),
    description="Pull one session from XNAT, index and tag its series, convert them, check the counts.",
)
