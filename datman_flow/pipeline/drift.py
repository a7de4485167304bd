"""The header-drift step of a session: each converted series against its gold standard (or,
where none exists yet, against the most common values of the site's earlier sessions), its
findings recorded (promoting a series to gold standard: gold.py).

The comparison itself is the core's (drift/); this module only wires it to the session,
the store and the configs folder."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datman_flow.drift import (
    Finding,
    GoldStandardError,
    compare_parameters,
    extract_parameters,
    find_gold,
    gold_path,
    provisional_reference,
)
from datman_flow.layout import DataLayout
from datman_flow.pipeline import persist
from datman_flow.pipeline.locks import session_lock
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.records import SeriesRecord
from datman_flow.store import CheckRow, HeaderDiffRow, HeaderParameterRow, MetricStore
from datman_flow.store.queries import parameter_history

log = logging.getLogger(__name__)
History = Callable[[str, str], list[dict]]  # (tag, this session) -> earlier sessions' parameters, oldest first


@dataclass(frozen=True)
class SeriesDrift:
    series: SeriesRecord
    parameters: dict
    findings: tuple[Finding, ...]
    reference: str  # gold file, 'provisional: N sessions', or '' when there is none yet
    severity: str
    error: str = ""  # why this series could not be checked


@dataclass
class DriftResult:
    checked: list[SeriesDrift] = field(default_factory=list)

    @property
    def findings(self) -> list[tuple[SeriesDrift, Finding]]:
        return [(s, f) for s in self.checked for f in s.findings]

    @property
    def without_reference(self) -> list[SeriesDrift]:
        return [s for s in self.checked if not s.reference and not s.error]

    @property
    def errors(self) -> list[SeriesDrift]:
        return [s for s in self.checked if s.error]

    @property
    def passed(self) -> bool:
        return not self.findings and not self.errors

    @property
    def severity(self) -> str:
        failing = [s for s in self.checked if s.findings or s.error]
        return "error" if any(s.severity == "error" for s in failing) else "warn"

    def summary(self) -> str:
        upgrades = [f for _, f in self.findings if f.kind == "software_upgrade"]
        parts = []
        if upgrades:
            parts.append(f"SOFTWARE UPGRADE: {upgrades[0].expected} -> {upgrades[0].actual}")
        if self.findings:
            fields = sorted({f.field for _, f in self.findings})
            parts.append(f"{len(self.findings)} finding(s) in {', '.join(fields)}")
        if self.errors:
            parts.append(f"{len(self.errors)} series not checkable")
        if self.without_reference:
            parts.append(f"{len(self.without_reference)} series without a reference yet")
        return "; ".join(parts) or f"no drift in {len(self.checked)} series"


def reference_for(target: SessionTarget, tag: str, config_dir: Path, history: History) -> tuple[dict | None, str, bool]:
    # Gold standards are for participants' protocols; phantoms are compared with earlier phantoms.
    gold = None if target.scan_id.is_phantom else find_gold(config_dir, target.scan_id.study, target.scan_id.site, tag)
    if gold is not None:
        return gold.parameters, str(gold_path(config_dir, gold.study, gold.site, tag)), False
    earlier = history(tag, target.label)
    reference = provisional_reference(earlier)
    if reference is None:
        return None, "", True
    return reference, f"provisional: most common values of {len(earlier)} earlier sessions", True


def check_series(target: SessionTarget, record: SeriesRecord, config_dir: Path, history: History) -> SeriesDrift:
    settings = target.study.header_settings(target.site.code, record.tag)
    try:
        parameters = extract_parameters(Path(record.nifti_path),
                                        dicom=Path(record.dicom_kept) if record.dicom_kept else None)
        reference, source, provisional = reference_for(target, record.tag, config_dir, history)
    except (GoldStandardError, OSError, ValueError) as exc:
        return SeriesDrift(record, {}, (), "", settings.severity, error=str(exc))
    if reference is None:
        return SeriesDrift(record, parameters, (), "", settings.severity)
    findings = compare_parameters(parameters, reference, settings, provisional=provisional)
    return SeriesDrift(record, parameters, tuple(findings), source, settings.severity)


def check_header_drift(target: SessionTarget, series: Sequence[SeriesRecord], config_dir: Path,
                       history: History) -> DriftResult:
    result = DriftResult()
    for record in series:
        if record.tag and record.conversion_status == "converted" and record.nifti_path:
            result.checked.append(check_series(target, record, config_dir, history))
    return result


CHECK_NAME = "header_drift"


def diff_rows(session: str, result: DriftResult) -> list[HeaderDiffRow]:
    return [HeaderDiffRow(session=session, series_number=s.series.series_number, tag=str(s.series.tag),
                          field=f.field, expected=json.dumps(f.expected), actual=json.dumps(f.actual),
                          tolerance=f.tolerance, kind=f.kind, gold_source=s.reference, provisional=f.provisional,
                          severity=s.severity)
            for s, f in result.findings]


def parameter_rows(target: SessionTarget, result: DriftResult) -> list[HeaderParameterRow]:
    return [HeaderParameterRow(session=target.label, study=target.scan_id.study, site=target.scan_id.site,
                               tag=str(s.series.tag), series_number=s.series.series_number,
                               parameters=json.dumps(s.parameters, sort_keys=True))
            for s in result.checked if s.parameters]


def store_history(store: MetricStore, study: str, site: str, phantom: bool) -> History:
    """Earlier sessions' parameters for one site (phantoms apart from participants), oldest first."""

    def history(tag: str, session: str) -> list[dict]:
        return parameter_history(store, study, site, tag, other_than=session, phantom=phantom)

    return history


def check_rows(session: str, result: DriftResult) -> list[CheckRow]:
    """One check_results row per checked series (found = its number of findings)."""
    rows = []
    for s in result.checked:
        detail = s.error or ("; ".join(f"{f.field} {f.kind}" for f in s.findings) or
                             ("no reference yet" if not s.reference else "ok"))
        rows.append(CheckRow(session=session, check_name=CHECK_NAME, tag=s.series.tag,
                             passed=None if not s.reference and not s.error else not s.findings and not s.error,
                             expected=None, found=len(s.findings),
                             detail=detail, series=(s.series.series_number,)))
    return rows


def drift_step(target: SessionTarget, series: Sequence[SeriesRecord], config_dir: Path,
               layout: DataLayout) -> DriftResult:
    """Check every converted series of the session and record the parameters, the findings
    and one check row per series."""
    sid = target.scan_id
    history = store_history(layout.metric_store, sid.study, sid.site, sid.is_phantom)
    with session_lock(layout, target.label, "the header check"):
        result = check_header_drift(target, series, config_dir, history)
        persist.record_rows(layout, HeaderParameterRow, target.label, parameter_rows(target, result))
        persist.record_rows(layout, HeaderDiffRow, target.label, diff_rows(target.label, result))
        persist.record_checks(layout, target.label, CHECK_NAME, check_rows(target.label, result))
    return result


def promote_hint(target: SessionTarget, drift: SeriesDrift) -> str:
    return (f"no gold standard for {target.scan_id.study}/{target.scan_id.site}/{drift.series.tag} and fewer than 3 "
            f"earlier sessions: review this series, then `datman-flow gold promote --session {target.label} "
            f"--tag {drift.series.tag} --series {drift.series.series_number}`")

