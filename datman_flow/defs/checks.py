"""The per-session asset checks, declared on the assets that evaluate them, partitioned like
them: each result belongs to its session, so the check's history and the partition page name
the session, and each session keeps its own latest result."""

from datman_flow.checks.expected_series import CHECK_NAME as EXPECTED_SERIES
from datman_flow.defs.partitions import session_check
from datman_flow.pipeline.drift import CHECK_NAME as HEADER_DRIFT
from datman_flow.pipeline.health import HEALTHY
from datman_flow.pipeline.normalisation import CHECK_NAME as NORMALISATION
from datman_flow.pipeline.outliers import CHECK_NAME as QC_OUTLIERS
from datman_flow.pipeline.review_state import REVIEW

EXPECTED_SERIES_SPEC = session_check(EXPECTED_SERIES, "series_index",
                                     "every series the site's protocol expects, no more, no less")

# Blocking: with `severity: error` in the study's header_check, a failing check stops the
# session's downstream assets (its QC) and fails the run.
HEADER_DRIFT_SPEC = session_check(
    HEADER_DRIFT, "nifti", "acquisition parameters of each converted series against the site's gold standard",
    blocking=True)

HEALTHY_SPEC = session_check(
    HEALTHY, "qc_metrics", "the session needs no person (its health verdict is ok): judged from everything its run "
                           "recorded, once its last step has run; a failed run leaves it not executed")

# Not blocking: an outlier is for a person to look at, not a reason to stop the session.
QC_OUTLIERS_SPEC = session_check(
    QC_OUTLIERS, "qc_metrics", "key QC metrics of each measured series against the site's own history (robust z), "
                               "or MRIQC's typical ranges while that history is short")

# Not blocking: a failed normalisation is for a person to look at (its picture), the metrics stand.
NORMALISATION_SPEC = session_check(
    NORMALISATION, "qc_metrics", "each T1w's normalisation to the MNI152NLin2009aSym template: its brain overlaps "
                                 "the template's brain mask (Dice) by at least 0.80, and its structural derivatives "
                                 "were written")

# Not blocking, and nothing depends on it: people's review, evaluated after each run (pending
# until someone signs the session off) and again whenever a reviewer changes it (review_sensor.py).
REVIEW_SPEC = session_check(
    REVIEW, "session_review", "people's review in the review app: pending (a warning) until a reviewer signs the "
                              "session off; failed (an error) while a picture's latest rating is FAIL or a series "
                              "is blacklisted")
