"""Per-session image-quality metrics, after conversion (blocked when header drift fails at error)."""

import dagster as dg

from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline import record
from datman_flow.pipeline.qc_step import measure_session, metric_rows, series_rows
from datman_flow.pipeline.resolve import resolve_session
from datman_flow.pipeline.summary import markdown_table
from datman_flow.qc.measure import KEY_METRICS
from datman_flow.records import SeriesRecord


def fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@dg.asset(partitions_def=SESSIONS, group_name="session", kinds={"numpy"})
def qc_metrics(context: dg.AssetExecutionContext, datman: DatmanSettings, nifti: list[SeriesRecord]):
    """MRIQC's image-quality metrics for every converted series whose tag has qc anat, fmri or dwi,
    with a picture and an MRIQC-format JSON beside each NIfTI."""
    config = datman.load_config()
    target = resolve_session(config, context.partition_key)  # nifti already refused unknown labels
    layout = datman.layout()
    measured = measure_session(nifti, config.tags)
    record.record_rows(layout, "qc_metrics", target.label, metric_rows(target.label, measured))
    record.record_rows(layout, "qc_series", target.label, series_rows(target.label, measured))
    metadata: dict[str, object] = {
        "measured": sum(1 for q in measured if q.status == "measured"),
        "failed": sum(1 for q in measured if q.status == "failed"),
    }
    for kind, names in KEY_METRICS.items():
        rows = [(q.series.series_number, q.series.tag, *(fmt(q.result.metrics.get(n, "")) for n in names))
                for q in measured if q.kind == kind and q.result]
        if rows:
            metadata[f"{kind}_metrics"] = dg.MetadataValue.md(markdown_table(["series", "tag", *names], rows))
    for q in measured:
        if q.picture_path:
            metadata[f"picture_{q.series.series_number}_{q.series.tag}"] = dg.MetadataValue.path(q.picture_path)
        if q.status == "failed" or q.message:
            context.log.warning(f"series {q.series.series_number} ({q.series.tag}): {q.message}")
    failures = [(q.series.series_number, q.series.tag, q.message) for q in measured if q.message]
    if failures:
        metadata["problems"] = dg.MetadataValue.md(markdown_table(["series", "tag", "problem"], failures))
    return dg.MaterializeResult(metadata=metadata)
