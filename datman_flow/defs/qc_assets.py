"""Per-session image-quality metrics, after conversion (blocked when header drift fails at error)."""

import dagster as dg

from datman_flow.defs.checks import HEALTHY_SPEC, NORMALISATION_SPEC, QC_OUTLIERS_SPEC
from datman_flow.defs.metadata import check_result, log_all, metadata
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings
from datman_flow.instance_yaml import QC_POOL
from datman_flow.pipeline import summary
from datman_flow.pipeline.health import health_outcome, judge, read_facts
from datman_flow.pipeline.normalisation_check import normalisation_outcome
from datman_flow.pipeline.qc import qc_step
from datman_flow.records import SeriesRecord


@dg.asset(partitions_def=SESSIONS, group_name="session", kinds={"numpy"}, pool=QC_POOL,
          check_specs=[QC_OUTLIERS_SPEC, NORMALISATION_SPEC, HEALTHY_SPEC])
def qc_metrics(context: dg.AssetExecutionContext, datman: DatmanSettings, nifti: list[SeriesRecord]):
    """MRIQC's image-quality metrics for every converted series whose tag has qc anat, fmri or dwi,
    with a picture and an MRIQC-format JSON beside each NIfTI; the pictures shown inline, linked
    to their full size on `datman-flow review` when its URL is set; a T1w's structural derivatives;
    then the qc_outliers and normalisation checks and the session's health verdict (the healthy check)."""
    pictures_url = datman.pictures_base_url()  # a bad URL is refused before the work
    target, layout = datman.session(context.partition_key), datman.layout()
    measured = qc_step(target, layout, nifti, datman.load_config().tags)
    log_all(context.log, summary.qc_warnings(measured))
    health = judge(read_facts(layout, target.label))
    return dg.MaterializeResult(
        metadata=metadata(summary.qc_metadata(measured, pictures_url) | summary.flag_metadata(measured)),
        check_results=[check_result(summary.qc_outliers_outcome(measured), target.label),
                       check_result(normalisation_outcome(measured), target.label),
                       check_result(health_outcome(health), target.label)])
