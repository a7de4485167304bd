"""The per-session asset checks, declared on the assets that evaluate them."""

import dagster as dg

from datman_flow.checks.expected_series import CHECK_NAME as EXPECTED_SERIES
from datman_flow.pipeline.drift import CHECK_NAME as HEADER_DRIFT
from datman_flow.pipeline.outliers import CHECK_NAME as QC_OUTLIERS

EXPECTED_SERIES_SPEC = dg.AssetCheckSpec(
    EXPECTED_SERIES, asset="series_index",
    description="every series the site's protocol expects, no more, no less")

# Blocking: with `severity: error` in the study's header_check, a failing check stops the
# session's downstream assets (its QC) and fails the run.
HEADER_DRIFT_SPEC = dg.AssetCheckSpec(
    HEADER_DRIFT, asset="nifti", blocking=True,
    description="acquisition parameters of each converted series against the site's gold standard")

# Not blocking: an outlier is for a person to look at, not a reason to stop the session.
QC_OUTLIERS_SPEC = dg.AssetCheckSpec(
    QC_OUTLIERS, asset="qc_metrics",
    description="key QC metrics of each measured series against the site's own history (robust z), "
                "or MRIQC's typical ranges while that history is short")
