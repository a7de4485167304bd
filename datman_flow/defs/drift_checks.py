"""The per-session header-drift check, evaluated by the NIfTI asset right after conversion.

It is declared as a blocking check spec of `nifti`: with `severity: error` in the study's
header_check, a failing check stops the session's downstream assets."""

import dagster as dg

from datman_flow.config import LabConfig
from datman_flow.layout import DataLayout
from datman_flow.pipeline import record
from datman_flow.pipeline.drift_check import (check_header_drift, check_rows, diff_rows, parameter_rows,
                                              promote_hint, store_history)
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.pipeline.summary import markdown_table
from datman_flow.records import SeriesRecord

CHECK = "header_drift"


HEADER_DRIFT_SPEC = dg.AssetCheckSpec(
    CHECK, asset="nifti", blocking=True,
    description="acquisition parameters of each converted series against the site's gold standard")


def header_drift_result(context: dg.AssetExecutionContext, config: LabConfig, target: SessionTarget,
                        layout: DataLayout, nifti: list[SeriesRecord]) -> dg.AssetCheckResult:
    history = store_history(layout.metrics_db, layout.store, target.scan_id.study, target.scan_id.site,
                            target.scan_id.is_phantom)
    result = check_header_drift(target, nifti, config.config_dir, history)
    record.record_rows(layout, "header_parameters", target.label, parameter_rows(target, result))
    record.record_rows(layout, "header_diffs", target.label, diff_rows(target.label, result))
    record.record_checks(layout, target.label, CHECK, check_rows(target.label, result))
    hints = [promote_hint(target, s) for s in result.without_reference]
    for s in result.errors:
        context.log.error(f"series {s.series.series_number} ({s.series.tag}) not checked: {s.error}")
    findings = [(s.series.series_number, s.series.tag, f) for s, f in result.findings]
    table = markdown_table(
        ["series", "tag", "field", "expected", "actual", "tolerance", "kind"],
        [(n, t, f.field, f.expected, f.actual, f.tolerance, f.kind + (" (provisional)" if f.provisional else ""))
         for n, t, f in findings]) if findings else "no drift"
    references = markdown_table(["series", "tag", "reference"],
                                [(s.series.series_number, s.series.tag, s.reference or s.error or "none yet")
                                 for s in result.checked])
    severity = dg.AssetCheckSeverity.ERROR if result.severity == "error" else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name=CHECK, passed=result.passed, severity=severity, description=result.summary(),
        metadata={
            "findings": dg.MetadataValue.md(table),
            "references": dg.MetadataValue.md(references),
            "software_upgrades": sum(1 for _, _, f in findings if f.kind == "software_upgrade"),
            "to_promote": dg.MetadataValue.md("\n".join(f"- {h}" for h in hints) or "nothing"),
        })


