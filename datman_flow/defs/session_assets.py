"""The per-session assets: raw DICOM from XNAT -> series index (+ expected-series check) -> NIfTI
(+ header-drift check) -> QC metrics (defs/qc_assets.py).

Each body loads the configuration, calls the core and turns its result into metadata.
"""

import dagster as dg

from datman_flow.checks.expected_series import CHECK_NAME, check_expected_series
from datman_flow.defs.drift_checks import HEADER_DRIFT_SPEC, header_drift_result
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.qc_assets import qc_metrics
from datman_flow.defs.resources import DatmanSettings
from datman_flow.dicom.convert import find_dcm2niix
from datman_flow.dicom.index import index_session
from datman_flow.dicom.session_convert import convert_session
from datman_flow.pipeline import record, summary
from datman_flow.pipeline.pull import pull_session
from datman_flow.pipeline.resolve import SessionRejected, resolve_session
from datman_flow.records import PulledSession, SeriesRecord
from datman_flow.xnat import XnatClient

GROUP = "session"


def target_for(context: dg.AssetExecutionContext, datman: DatmanSettings):
    config = datman.load_config()
    try:
        return config, resolve_session(config, context.partition_key)
    except SessionRejected as exc:
        raise dg.Failure(description=str(exc)) from None


@dg.asset(partitions_def=SESSIONS, group_name=GROUP, kinds={"xnat", "dicom"})
def raw_dicom(context: dg.AssetExecutionContext, datman: DatmanSettings) -> dg.Output[PulledSession]:
    """Every scan of the session downloaded from XNAT, each file's MD5 and the file count verified."""
    _, target = target_for(context, datman)
    layout = datman.layout()
    record.record_session(layout, record.session_record(target, None, "ingesting"))
    try:
        pulled = pull_session(lambda: XnatClient.from_env(target.study.xnat.url), target,
                              layout.raw_session(target.label))
    except Exception as exc:
        record.record_session(layout, record.session_record(target, None, "failed", f"pull failed: {exc}"))
        raise
    failed = pulled.failed
    for scan in failed:
        context.log.warning(f"scan {scan.scan_id} ({scan.description}) not downloaded: {scan.message}")
    return dg.Output(pulled, metadata={
        "scans": len(pulled.scans),
        "failed_scans": len(failed),
        "files": sum(s.n_files for s in pulled.scans),
        "megabytes": round(sum(s.n_bytes for s in pulled.scans) / 1e6, 1),
        "xnat_id": pulled.xnat_id,
        "path": dg.MetadataValue.path(pulled.raw_dir),
        "downloads": dg.MetadataValue.md(summary.pull_table(pulled)),
    })


@dg.asset(partitions_def=SESSIONS, group_name=GROUP, kinds={"dicom"},
          check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset="series_index",
                                         description="every series the site's protocol expects, no more, no less")])
def series_index(context: dg.AssetExecutionContext, datman: DatmanSettings, raw_dicom: PulledSession):
    """One row per series: number, description, UIDs, ImageType, file and frame counts, tag or the reason it has none."""
    _, target = target_for(context, datman)
    layout = datman.layout()
    series = index_session(raw_dicom, target.rules)
    record.record_series(layout, target.label, series)
    result = check_expected_series(target.label, series, target.rules)
    record.record_checks(layout, target.label, CHECK_NAME, result.rows)
    yield dg.Output(series, metadata={
        "series": len(series),
        "tagged": sum(1 for s in series if s.tag),
        "untagged": sum(1 for s in series if not s.tag),
        "index": dg.MetadataValue.md(summary.index_table(series)),
    })
    yield dg.AssetCheckResult(
        check_name=CHECK_NAME, passed=result.passed, severity=dg.AssetCheckSeverity.WARN,
        description=result.summary(),
        metadata={
            "missing": ", ".join(f"{r.tag} ({r.found}/{r.expected})" for r in result.missing) or "none",
            "extra": ", ".join(f"{r.tag} ({r.found}/{r.expected})" for r in result.extra) or "none",
            "untagged": ", ".join(f"{r.series_number} {r.description}" for r in result.untagged) or "none",
            "result": dg.MetadataValue.md(summary.check_table(result)),
        })


@dg.asset(partitions_def=SESSIONS, group_name=GROUP, kinds={"nifti"}, check_specs=[HEADER_DRIFT_SPEC])
def nifti(context: dg.AssetExecutionContext, datman: DatmanSettings, raw_dicom: PulledSession,
          series_index: list[SeriesRecord]):
    """Each tagged series converted by dcm2niix to NIfTI + JSON sidecar under the lab's naming convention,
    then checked for header drift."""
    config, target = target_for(context, datman)
    layout = datman.layout()
    tool = find_dcm2niix()
    series = convert_session(series_index, target.scan_id, layout, tool)
    record.record_series(layout, target.label, series)
    status, reason = record.session_status(series)
    record.record_session(layout, record.session_record(target, raw_dicom, status, reason))
    for s in series:
        if s.conversion_status == "failed":
            context.log.warning(f"series {s.series_number} ({s.description}) not converted: {s.conversion_message}")
    yield dg.Output(series, metadata={
        "converted": sum(1 for s in series if s.conversion_status == "converted"),
        "failed": sum(1 for s in series if s.conversion_status == "failed"),
        "status": status,
        "dcm2niix": tool.version,
        "path": dg.MetadataValue.path(str(layout.nii(target.scan_id))),
        "conversion": dg.MetadataValue.md(summary.conversion_table(series)),
    })
    yield header_drift_result(context, config, target, layout, series)


SESSION_ASSETS = [raw_dicom, series_index, nifti, qc_metrics]
