"""The jobs of the session partitions: the ingest (every per-session asset and its checks for
one partition: what the sensor and the CLI run) and the review's re-evaluation of one session."""

import dagster as dg

ingest_session_job = dg.define_asset_job(
    "ingest_session",
    # the session's assets and their checks (session_health is reported after the run, not run)
    selection=dg.AssetSelection.assets("raw_dicom", "series_index", "nifti", "qc_metrics", "session_review",
                                             "bids_export"),
    description="Pull one session from XNAT, index and tag its series, convert them, check the counts; "
                "then its review state (pending until a reviewer signs it off) and its place in the BIDS release.",
)

review_session_job = dg.define_asset_job(
    "review_session",
    selection=dg.AssetSelection.assets("session_review", "bids_export"),
    description="Evaluate one session's review again (the review_changes sensor runs it when a reviewer rates, "
                "signs off or blacklists): nothing is pulled or computed, the review tables are read, and the "
                "session's BIDS visit written or removed accordingly.",
)
