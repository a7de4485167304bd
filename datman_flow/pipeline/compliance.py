"""Study-wide protocol compliance: per site and tag, how many sessions comply, which parameter
drifted, when it first changed and in which session (the first session after a software upgrade
is the one a lab asks about). Computed from the metric store's recorded parameters and findings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from datman_flow.config import LabConfig
from datman_flow.layout import DataLayout
from datman_flow.pipeline.summary import Markdown, markdown_table
from datman_flow.store import MetricStore
from datman_flow.store.queries import RecordedDiff, checked_series, recorded_diffs, unevaluated_series

KIND_ORDER = {"software_upgrade": 0, "changed": 1, "missing": 2, "unexpected": 3}


@dataclass(frozen=True)
class Drift:
    field: str
    kind: str
    sessions: int  # sessions with this finding
    first_session: str
    first_date: str  # the session's scan date (XNAT's date, else its insert_date)
    expected: object
    actual: object
    provisional: bool


@dataclass
class TagCompliance:
    site: str
    tag: str
    sessions: int = 0
    complying: int = 0
    unevaluated: int = 0  # sessions without a reference yet: neither complying nor drifted
    drifts: list[Drift] = field(default_factory=list)


def study_compliance(store: MetricStore, study: str) -> list[TagCompliance]:
    by_key: dict[tuple[str, str], TagCompliance] = {}
    for checked in checked_series(store, study):
        entry = by_key.setdefault((checked.site, checked.tag), TagCompliance(checked.site, checked.tag))
        entry.sessions += 1
    drifted: dict[tuple[str, str], set[str]] = {}
    firsts: dict[tuple[str, str, str, str], RecordedDiff] = {}
    counts: dict[tuple[str, str, str, str], set[str]] = {}
    for diff in recorded_diffs(store, study):
        drifted.setdefault((diff.site, diff.tag), set()).add(diff.session)
        finding = (diff.site, diff.tag, diff.field, diff.kind)
        firsts.setdefault(finding, diff)
        counts.setdefault(finding, set()).add(diff.session)
    for (site, tag, name, kind), diff in firsts.items():
        entry = by_key.setdefault((site, tag), TagCompliance(site, tag))
        entry.drifts.append(Drift(name, kind, len(counts[(site, tag, name, kind)]), diff.session, diff.scan_date,
                                  diff.expected, diff.actual, diff.provisional))
    unevaluated: dict[tuple[str, str], set[str]] = {}
    for checked in unevaluated_series(store, study):
        unevaluated.setdefault((checked.site, checked.tag), set()).add(checked.session)
    for key, entry in by_key.items():
        entry.unevaluated = len(unevaluated.get(key, set()) - drifted.get(key, set()))
        entry.complying = entry.sessions - len(drifted.get(key, set())) - entry.unevaluated
        entry.drifts.sort(key=lambda d: (KIND_ORDER.get(d.kind, 9), d.first_date, d.field))
    return [by_key[key] for key in sorted(by_key)]


def short(value: object, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compliance_rows(report: list[TagCompliance]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for entry in report:
        if not entry.drifts:
            rows.append((entry.site, entry.tag, f"{entry.complying}/{entry.sessions}", entry.unevaluated,
                         "", "", "", "", ""))
        for d in entry.drifts:
            rows.append((entry.site, entry.tag, f"{entry.complying}/{entry.sessions}", entry.unevaluated, d.field,
                         d.kind + (" (provisional)" if d.provisional else ""), f"{d.sessions}",
                         f"{d.first_session} ({d.first_date})", f"{short(d.expected)} -> {short(d.actual)}"))
    return rows


NOTHING_YET = "no converted series recorded yet"
HEADERS = ["site", "tag", "complying", "no reference yet", "drifted parameter", "kind", "sessions",
           "first changed in", "change"]


def compliance_markdown(report: list[TagCompliance]) -> Markdown:
    return markdown_table(HEADERS, compliance_rows(report)) if report else Markdown(NOTHING_YET)


@dataclass(frozen=True)
class ComplianceReports:
    """Every configured study's compliance report."""

    by_study: dict[str, list[TagCompliance]]

    def upgrade_warnings(self) -> list[str]:
        return [f"{code} {entry.site} {entry.tag}: software upgrade {d.expected} -> {d.actual}, "
                f"first in {d.first_session} ({d.first_date})"
                for code, report in self.by_study.items() for entry in report for d in entry.drifts
                if d.kind == "software_upgrade"]

    def metadata(self) -> dict[str, object]:
        out: dict[str, object] = {code: compliance_markdown(report) for code, report in self.by_study.items()}
        out["drifted_parameters"] = sum(len(e.drifts) for report in self.by_study.values() for e in report)
        return out


def compliance_step(config: LabConfig, layout: DataLayout) -> ComplianceReports:
    return ComplianceReports({code: study_compliance(layout.metric_store, code) for code in sorted(config.studies)})
