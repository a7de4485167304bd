"""What a person reads about a session: markdown tables and the metadata of each asset and
check, as plain values (`Markdown` text, `Path`s, numbers) that the Dagster layer wraps
(defs/metadata.py) and the terminal prints. Nothing here imports Dagster."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datman_flow.checks.expected_series import CHECK_NAME as EXPECTED_SERIES
from datman_flow.checks.expected_series import ExpectedSeriesResult
from datman_flow.drift import Finding, format_value
from datman_flow.pipeline.convert import ConvertedSession
from datman_flow.pipeline.drift import CHECK_NAME as HEADER_DRIFT
from datman_flow.pipeline.drift import DriftResult, promote_hint
from datman_flow.pipeline.index import IndexedSession
from datman_flow.pipeline.outliers import CHECK_NAME as QC_OUTLIERS
from datman_flow.pipeline.outliers import SITE_HISTORY, SeriesOutliers, flag_text
from datman_flow.pipeline.picture_summary import pictures_markdown
from datman_flow.pipeline.qc import SeriesQC
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.qc.kinds import QC_KINDS, usual_text
from datman_flow.records import PulledSession, SeriesRecord

Metadata = dict[str, object]
SIZE_ONLY = "size+count only"


class Markdown(str):
    """Text to be shown as markdown (a table, a list)."""


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check's result as the UI shows it."""

    name: str
    passed: bool
    severity: str  # warn | error: how a failure is shown (error blocks what follows)
    description: str
    metadata: Metadata = field(default_factory=dict)


def cell(value: object) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Markdown:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def tag_or_reason(record: SeriesRecord) -> str:
    return record.tag or f"— ({record.untagged_reason})"


# ---- raw_dicom ----------------------------------------------------------------------------------

def pull_table(pulled: PulledSession) -> Markdown:
    rows = [(s.scan_id, s.description, s.status, s.verified, s.n_files, f"{s.n_bytes / 1e6:.1f}", f"{s.seconds:.1f}",
             s.message) for s in pulled.scans]
    return markdown_table(["scan", "description", "download", "verified by", "files", "MB", "s", "problem"], rows)


def pull_metadata(pulled: PulledSession) -> Metadata:
    return {
        "scans": len(pulled.scans),
        "failed_scans": len(pulled.failed),
        "verified_by_size_only": sum(1 for s in pulled.scans if s.status == "complete" and s.verified == SIZE_ONLY),
        "files": sum(s.n_files for s in pulled.scans),
        "megabytes": round(sum(s.n_bytes for s in pulled.scans) / 1e6, 1),
        "xnat_id": pulled.xnat_id,
        "path": Path(pulled.raw_dir),
        "downloads": pull_table(pulled),
    }


def pull_warnings(pulled: PulledSession) -> list[str]:
    failed = [f"scan {s.scan_id} ({s.description}) not downloaded: {s.message}" for s in pulled.failed]
    unverified = [f"scan {s.scan_id} ({s.description}) verified by size and file count only: XNAT lists no MD5 "
                  f"digests for it (checksums are off on the server; `xnat: {{require_digest: true}}` refuses such "
                  f"scans)" for s in pulled.scans if s.status == "complete" and s.verified == SIZE_ONLY]
    return failed + unverified


# ---- series_index and expected_series -----------------------------------------------------------

def index_table(series: Sequence[SeriesRecord]) -> Markdown:
    rows = [(r.series_number, r.description, tag_or_reason(r), r.n_files, r.n_frames, r.image_type,
             ", ".join(r.bad_files[:3])) for r in series]
    return markdown_table(["series", "description", "tag", "files", "frames", "ImageType", "bad files"], rows)


def index_metadata(indexed: IndexedSession) -> Metadata:
    series = indexed.series
    return {
        "series": len(series),
        "tagged": sum(1 for s in series if s.tag),
        "untagged": sum(1 for s in series if not s.tag),
        "index": index_table(series),
    }


def check_table(result: ExpectedSeriesResult) -> Markdown:
    rows = [("PASS" if r.passed else "FAIL", r.tag, r.expected, r.found, r.detail, ", ".join(r.series))
            for r in result.rows]
    text = markdown_table(["", "tag", "expected", "found", "detail", "series"], rows)
    if result.untagged:
        text += "\n\nUntagged series:\n\n" + markdown_table(
            ["series", "description", "reason"],
            [(r.series_number, r.description, r.untagged_reason) for r in result.untagged])
    if result.failed_downloads:
        text += "\n\nFailed downloads:\n\n" + markdown_table(
            ["scan", "description", "reason"],
            [(r.scan_id, r.description, r.download_message) for r in result.failed_downloads])
    return Markdown(text)


def expected_series_outcome(result: ExpectedSeriesResult) -> CheckOutcome:
    return CheckOutcome(EXPECTED_SERIES, result.passed, "warn", result.summary(), {
        "missing": ", ".join(f"{r.tag} ({r.found}/{r.expected})" for r in result.missing) or "none",
        "extra": ", ".join(f"{r.tag} ({r.found}/{r.expected})" for r in result.extra) or "none",
        "untagged": ", ".join(f"{r.series_number} {r.description}" for r in result.untagged) or "none",
        "result": check_table(result),
    })


# ---- nifti and header_drift ---------------------------------------------------------------------

def conversion_table(series: Sequence[SeriesRecord]) -> Markdown:
    rows = [(r.series_number, r.description, tag_or_reason(r), r.n_files, r.conversion_status,
             ", ".join(os.path.basename(p) for p in r.outputs if p.endswith((".nii.gz", ".nii"))),
             r.conversion_message) for r in series]
    return markdown_table(["series", "description", "tag", "files", "conversion", "NIfTI", "message"], rows)


def conversion_metadata(converted: ConvertedSession) -> Metadata:
    series = converted.series
    return {
        "converted": sum(1 for s in series if s.conversion_status == "converted"),
        "failed": sum(1 for s in series if s.conversion_status == "failed"),
        "status": converted.status,
        "dcm2niix": converted.dcm2niix_version,
        "path": converted.nii_dir,
        "conversion": conversion_table(series),
    }


def conversion_warnings(converted: ConvertedSession) -> list[str]:
    return [f"series {s.series_number} ({s.description}) not converted: {s.conversion_message}"
            for s in converted.series if s.conversion_status == "failed"]


def drift_table(findings: Sequence[tuple[str, str | None, Finding]]) -> Markdown:
    """series | tag | field | expected | actual | tolerance | kind; long values shortened."""
    if not findings:
        return Markdown("no drift: every compared parameter matches its reference")
    return markdown_table(
        ["series", "tag", "field", "expected", "actual", "tolerance", "kind"],
        [(n, t, f.field, format_value(f.expected), format_value(f.actual),
          "" if f.tolerance is None else format_value(f.tolerance),
          f.kind + (" (provisional reference)" if f.provisional else "")) for n, t, f in findings])


def drift_outcome(target: SessionTarget, result: DriftResult) -> CheckOutcome:
    findings = [(s.series.series_number, s.series.tag, f) for s, f in result.findings]
    table = drift_table(findings)
    references = markdown_table(["series", "tag", "reference"],
                                [(s.series.series_number, s.series.tag, s.reference or s.error or "none yet")
                                 for s in result.checked])
    hints = [promote_hint(target, s) for s in result.without_reference]
    return CheckOutcome(HEADER_DRIFT, result.passed, result.severity, result.summary(), {
        "findings": table,
        "references": references,
        "software_upgrades": sum(1 for _, _, f in findings if f.kind == "software_upgrade"),
        "to_promote": Markdown("\n".join(f"- {h}" for h in hints) or "nothing"),
    })


def drift_errors(result: DriftResult) -> list[str]:
    return [f"series {s.series.series_number} ({s.series.tag}) not checked: {s.error}" for s in result.errors]


# ---- qc_metrics -----------------------------------------------------------------------------------

def qc_metadata(measured: Sequence[SeriesQC], pictures_url: str = "") -> Metadata:
    """`pictures_url`: the review app's base URL, for links to the full-size pictures ('' : none)."""
    metadata: Metadata = {
        "measured": sum(1 for q in measured if q.status == "measured"),
        "failed": sum(1 for q in measured if q.status == "failed"),
    }
    for kind, spec in QC_KINDS.items():
        names = spec.key_metrics
        rows = [(q.series.series_number, q.series.tag, *(fmt(q.result.metrics.get(n, "")) for n in names))
                for q in measured if q.kind == kind and q.result]
        if rows:
            metadata[f"{kind}_metrics"] = markdown_table(["series", "tag", *names], rows)
    for q in measured:
        if q.picture_path:
            metadata[f"picture_{q.series.series_number}_{q.series.tag}"] = Path(q.picture_path)
    pictures = pictures_markdown(measured, pictures_url)
    if pictures:
        metadata["pictures"] = Markdown(pictures)
    problems = [(q.series.series_number, q.series.tag, q.message) for q in measured if q.message]
    if problems:
        metadata["problems"] = markdown_table(["series", "tag", "problem"], problems)
    return metadata


def qc_warnings(measured: Sequence[SeriesQC]) -> list[str]:
    return [f"series {q.series.series_number} ({q.series.tag}): {q.message}" for q in measured
            if q.status == "failed" or q.message]


# ---- qc_outliers: QC flags against the site's history and the typical ranges ---------------------

def flags_table(found: Sequence[SeriesOutliers]) -> Markdown:
    """series | tag | metric | value | basis | site median | z | range: every flag of the session."""
    rows = [(f.series_number, f.tag, f.metric, fmt(f.value), f.basis, "" if f.median is None else fmt(f.median),
             "" if f.z is None else f"{f.z:.1f}", usual_text((f.low, f.high)))
            for o in found for f in o.flags]
    if not rows:
        return Markdown("no flags: key metrics within the site's history, every metric within its typical range")
    return markdown_table(["series", "tag", "metric", "value", "basis", "site median", "z", "range"], rows)


def outliers_of(measured: Sequence[SeriesQC]) -> list[SeriesOutliers]:
    return [q.outliers for q in measured if q.outliers is not None]


def flag_metadata(measured: Sequence[SeriesQC]) -> Metadata:
    """The qc_metrics asset's flags: a count and the table."""
    found = outliers_of(measured)
    return {"flagged": sum(len(o.flags) for o in found), "flags": flags_table(found)}


def qc_outliers_outcome(measured: Sequence[SeriesQC]) -> CheckOutcome:
    """The qc_outliers check: fails (warn) when a series has a site-history outlier, or a
    typical-range flag while its history is short."""
    found = outliers_of(measured)
    failing = [(o, f) for o in found for f in o.failing]
    compared = sum(1 for o in found if o.compared)
    if failing:
        named = "; ".join(f"series {o.series_number} {o.tag} {flag_text(f, o.min_history)}" for o, f in failing[:3])
        more = f"; and {len(failing) - 3} more" if len(failing) > 3 else ""
        description = f"{len(failing)} outlier{'s' if len(failing) > 1 else ''}: {named}{more}"
    elif found:
        description = (f"no outliers in {len(found)} series ({compared} against the site's history, "
                       f"{len(found) - compared} with a history too short)")
    else:
        description = "no series measured"
    series = markdown_table(
        ["series", "tag", "software", "history", "result", "detail"],
        [(o.series_number, o.tag, o.software, o.n_history,
          {True: "PASS", False: "FAIL", None: "not evaluated"}[o.passed], o.detail()) for o in found])
    return CheckOutcome(QC_OUTLIERS, all(o.passed is not False for o in found), "warn", description, {
        "flags": flags_table(found),
        "series": series,
        "outliers": len(failing),
        "site_outliers": sum(1 for o in found for f in o.flags if f.basis == SITE_HISTORY),
        "flagged": sum(len(o.flags) for o in found),
        "series_compared": compared,
        "series_short_history": len(found) - compared,
    })
