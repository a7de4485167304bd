"""The per-session assets: raw DICOM from XNAT -> series index (+ expected-series check) ->
NIfTI (+ header-drift check) -> QC metrics (qc_assets.py) -> people's review (review_assets.py).

Each body: the session's rules from the run's configuration, one pipeline step (which records
its rows), metadata built by pipeline/summary.py.
"""

import dagster as dg

from datman_flow.defs.bids_assets import bids_export
from datman_flow.defs.checks import EXPECTED_SERIES_SPEC, HEADER_DRIFT_SPEC
from datman_flow.defs.metadata import check_result, log_all, metadata
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.qc_assets import qc_metrics
from datman_flow.defs.resources import DatmanSettings, XnatResource
from datman_flow.defs.review_assets import session_review
from datman_flow.pipeline import summary
from datman_flow.pipeline.convert import convert_step
from datman_flow.pipeline.drift import drift_step
from datman_flow.pipeline.index import index_step
from datman_flow.pipeline.pull import pull_step
from datman_flow.records import PulledSession, SeriesRecord

GROUP = "session"


@dg.asset(partitions_def=SESSIONS, group_name=GROUP, kinds={"xnat", "dicom"})
def raw_dicom(context: dg.AssetExecutionContext, datman: DatmanSettings,
              xnat: XnatResource) -> dg.Output[PulledSession]:
    """Every scan of the session downloaded from XNAT, each file's MD5 and the file count verified."""
    target = datman.session(context.partition_key)
    pulled = pull_step(target, datman.layout(), lambda: xnat.client(target.study.xnat.url))
    log_all(context.log, summary.pull_warnings(pulled))
    return dg.Output(pulled, metadata=metadata(summary.pull_metadata(pulled)))


@dg.asset(partitions_def=SESSIONS, group_name=GROUP, kinds={"dicom"}, check_specs=[EXPECTED_SERIES_SPEC])
def series_index(context: dg.AssetExecutionContext, datman: DatmanSettings, raw_dicom: PulledSession):
    """One row per series: number, description, UIDs, ImageType, file and frame counts, tag or the
    reason it has none; then the expected-series check."""
    indexed = index_step(datman.session(context.partition_key), datman.layout(), raw_dicom)
    yield dg.Output(indexed.series, metadata=metadata(summary.index_metadata(indexed)))
    yield check_result(summary.expected_series_outcome(indexed.check), context.partition_key)


@dg.asset(partitions_def=SESSIONS, group_name=GROUP, kinds={"nifti"}, check_specs=[HEADER_DRIFT_SPEC])
def nifti(context: dg.AssetExecutionContext, datman: DatmanSettings, raw_dicom: PulledSession,
          series_index: list[SeriesRecord]):
    """Each tagged series converted by dcm2niix to NIfTI + JSON sidecar under the lab's naming convention,
    then checked for header drift."""
    target, layout = datman.session(context.partition_key), datman.layout()
    converted = convert_step(target, layout, raw_dicom, series_index)
    log_all(context.log, summary.conversion_warnings(converted))
    yield dg.Output(converted.series, metadata=metadata(summary.conversion_metadata(converted)))
    drift = drift_step(target, converted.series, datman.load_config().config_dir, layout)
    log_all(context.log, summary.drift_errors(drift), level="error")
    yield check_result(summary.drift_outcome(target, drift), target.label)


SESSION_ASSETS = [raw_dicom, series_index, nifti, qc_metrics, session_review, bids_export]
