"""One health verdict per session, for the operator: `ok`, `attention` (a person should look:
missing or extra series, header drift, QC outliers, a series that failed to download, convert
or measure) or `failed` (the run did not finish, or the session was refused), with the reasons
in a short line. Judged from what the session's steps recorded in the metric store, so the
sensor, the CLI and the board all say the same."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from datman_flow.checks.expected_series import CHECK_NAME as EXPECTED_SERIES
from datman_flow.layout import DataLayout
from datman_flow.pipeline.drift import CHECK_NAME as HEADER_DRIFT
from datman_flow.store import CheckRow, HeaderDiffRow, QcSeriesRow, SeriesRow, SessionRow

OK, ATTENTION, FAILED = "ok", "attention", "failed"
QC_OUTLIERS = "qc_outliers"
CHECKS = (EXPECTED_SERIES, HEADER_DRIFT, QC_OUTLIERS)


@dataclass(frozen=True)
class Health:
    verdict: str  # ok | attention | failed
    reasons: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        """The reasons in one short line ('' when ok)."""
        return "; ".join(self.reasons)

    def __str__(self) -> str:
        return f"{self.verdict} ({self.line})" if self.reasons else self.verdict


@dataclass(frozen=True)
class SessionFacts:
    """What the store holds of one session, as the verdict needs it."""

    session: SessionRow | None
    series: Sequence[SeriesRow] = ()
    checks: Sequence[CheckRow] = ()
    diffs: Sequence[HeaderDiffRow] = ()
    qc: Sequence[QcSeriesRow] = ()


def read_facts(layout: DataLayout, label: str) -> SessionFacts:
    store = layout.metric_store
    sessions = store.read(SessionRow, label)
    checks = [row for name in CHECKS for row in store.read(CheckRow, label, part=name)]
    return SessionFacts(sessions[0] if sessions else None, store.read(SeriesRow, label), checks,
                        store.read(HeaderDiffRow, label), store.read(QcSeriesRow, label))


def drift_reasons(facts: SessionFacts) -> list[str]:
    """Software upgrades first, then the other drifted parameters per tag."""
    upgrades = sorted({f"software upgrade {d.expected.strip(chr(34))} -> {d.actual.strip(chr(34))}"
                       for d in facts.diffs if d.kind == "software_upgrade"})
    by_tag: dict[str, set[str]] = {}
    for d in facts.diffs:
        if d.kind != "software_upgrade":
            by_tag.setdefault(d.tag, set()).add(d.field)
    drifted = [f"{tag} drifted: {', '.join(sorted(fields))}" for tag, fields in sorted(by_tag.items())]
    unchecked = [f"series {','.join(c.series)} ({c.tag}) header not checkable" for c in facts.checks
                 if c.check_name == HEADER_DRIFT and c.passed is False and not c.found]
    return upgrades + drifted + unchecked


def judge(facts: SessionFacts, run_error: str = "") -> Health:
    """The verdict of one session from its recorded facts (and the run's error, when it failed)."""
    row = facts.session
    if run_error or row is None or row.status in ("failed", "rejected", "ingesting"):
        why = run_error or (row.reason if row else "") or (f"run ended with the session {row.status}" if row
                                                           else "nothing recorded for the session")
        return Health(FAILED, (why,))
    reasons = []
    for check in facts.checks:
        if check.check_name == EXPECTED_SERIES and check.passed is False:
            word = "missing" if (check.found or 0) < (check.expected or 0) else "extra"
            reasons.append(f"{word} {check.tag} ({check.found}/{check.expected})")
    reasons += [f"scan {s.scan_id} not downloaded" for s in facts.series if s.download_status != "complete"]
    reasons += [f"series {s.series_number} ({s.tag}) not converted" for s in facts.series
                if s.tag and s.conversion_status == "failed"]
    reasons += drift_reasons(facts)
    outliers = [c for c in facts.checks if c.check_name == QC_OUTLIERS and c.passed is False]
    reasons += [f"QC outlier in series {','.join(c.series)} ({c.tag}): {c.detail}" for c in outliers]
    reasons += [f"QC of series {q.series_number} ({q.tag}) failed" for q in facts.qc if q.status == "failed"]
    return Health(ATTENTION, tuple(reasons)) if reasons else Health(OK)


def record_health(layout: DataLayout, label: str, health: Health, facts: SessionFacts) -> None:
    """The verdict on the session's row of the `sessions` table (a row is made when the run
    failed before recording one)."""
    row = facts.session or SessionRow(session=label, status="failed", reason=health.line)
    layout.metric_store.replace(SessionRow, label, [dataclasses.replace(
        row, health=health.verdict, health_reasons=health.line)])


def health_step(layout: DataLayout, label: str, run_error: str = "") -> Health:
    """Judge a session whose run has just finished, and record the verdict."""
    facts = read_facts(layout, label)
    health = judge(facts, run_error)
    record_health(layout, label, health, facts)
    return health
