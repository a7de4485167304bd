"""The jobs of the session partitions: the ingest (every per-session asset and its checks for
one partition: what the sensor and the CLI run) and the review's re-evaluation of one session.

Each job carries what one of its runs asks of a Kubernetes node (RUN_RESOURCES, the job tag
`dagster-k8s/config`: read by the K8sRunLauncher of deploy/helm/values.yaml, ignored by the local
and Docker launchers)."""

import json
import math

import dagster as dg

from datman_flow.config.runs_block import RunSettings

K8S_CONFIG_TAG = "dagster-k8s/config"
# Requests: what the scheduler reserves for a run's pod. The ingest's peak is its QC step, which
# runs.yml budgets at qc_gb_per_session (2.5 GB by default: 3Gi). Limits: a run past twice its
# budget is killed rather than starve the node; no CPU limit (dcm2niix and the QC use idle cores).
_INGEST_GI = math.ceil(RunSettings().qc_gb_per_session)
RUN_RESOURCES = {
    "ingest_session": {"requests": {"cpu": "1", "memory": f"{_INGEST_GI}Gi"},
                       "limits": {"memory": f"{2 * _INGEST_GI}Gi"}},
    "review_session": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    "refresh_study_views": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
}


def k8s_tags(job_name: str) -> dict[str, str]:
    """The job tag that sets the resources of each of its runs' pods under the K8sRunLauncher."""
    return {K8S_CONFIG_TAG: json.dumps({"container_config": {"resources": RUN_RESOURCES[job_name]}})}


ingest_session_job = dg.define_asset_job(
    "ingest_session",
    # the session's assets and their checks (session_health is reported after the run, not run)
    selection=dg.AssetSelection.assets("raw_dicom", "series_index", "nifti", "qc_metrics", "session_review",
                                             "bids_export"),
    description="Pull one session from XNAT, index and tag its series, convert them, check the counts; "
                "then its review state (pending until a reviewer signs it off) and its place in the BIDS release.",
    tags=k8s_tags("ingest_session"),
)

review_session_job = dg.define_asset_job(
    "review_session",
    selection=dg.AssetSelection.assets("session_review", "bids_export"),
    description="Evaluate one session's review again (the review_changes sensor runs it when a reviewer rates, "
                "signs off or blacklists): nothing is pulled or computed, the review tables are read, and the "
                "session's BIDS visit written or removed accordingly.",
    tags=k8s_tags("review_session"),
)
