"""One health verdict per session, for the operator: `ok`, `attention` (a person should look:
missing or extra series, header drift, QC outliers, a series that failed to download, convert
or measure) or `failed` (the run did not finish, or the session was refused), with the reasons
in a short line. Judged from what the session's steps recorded in the metric store, so the
sensor, the CLI and the board all say the same."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from datman_flow.checks.expected_series import CHECK_NAME as EXPECTED_SERIES
from datman_flow.checks.expected_series import count_phrase
from datman_flow.drift import format_value
from datman_flow.layout import DataLayout
from datman_flow.pipeline.drift import CHECK_NAME as HEADER_DRIFT
from datman_flow.pipeline.outliers import CHECK_NAME as QC_OUTLIERS
from datman_flow.pipeline.summary import CheckOutcome
from datman_flow.store import CheckRow, HeaderDiffRow, QcSeriesRow, SeriesRow, SessionRow

OK, ATTENTION, FAILED = "ok", "attention", "failed"
CHECKS = (EXPECTED_SERIES, HEADER_DRIFT, QC_OUTLIERS)
HEALTHY = "healthy"  # the check that shows the verdict


@dataclass(frozen=True)
class Problem:
    """One thing about a session a person should see, and what to do about it."""

    kind: str  # one of KINDS, in the order the board lists them
    text: str
    action: str


# `review` (a reviewer rated a picture FAIL or blacklisted a series) right after the two kinds
# that leave nothing else to judge: it is a person's verdict on the data itself, and what it
# leads to (a re-scan, a series left out) decides whether the automatic findings below still matter.
KINDS = ("failed", "rejected", "review", "transfer", "missing", "extra", "software_upgrade", "drift", "header",
         "conversion", "qc_outlier", "qc_failed")


@dataclass(frozen=True)
class Health:
    verdict: str  # ok | attention | failed
    problems: tuple[Problem, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(p.text for p in self.problems)

    @property
    def line(self) -> str:
        """The reasons in one short line ('' when ok)."""
        return "; ".join(self.reasons)

    def __str__(self) -> str:
        return f"{self.verdict} ({self.line})" if self.problems else self.verdict


@dataclass(frozen=True)
class SessionFacts:
    """What the store holds of one session, as the verdict needs it."""

    label: str
    session: SessionRow | None
    series: Sequence[SeriesRow] = ()
    checks: Sequence[CheckRow] = ()
    diffs: Sequence[HeaderDiffRow] = ()
    qc: Sequence[QcSeriesRow] = ()


def read_facts(layout: DataLayout, label: str) -> SessionFacts:
    store = layout.metric_store
    sessions = store.read(SessionRow, label)
    checks = [row for name in CHECKS for row in store.read(CheckRow, label, part=name)]
    return SessionFacts(label, sessions[0] if sessions else None, store.read(SeriesRow, label), checks,
                        store.read(HeaderDiffRow, label), store.read(QcSeriesRow, label))


def rerun(label: str) -> str:
    return f"`datman-flow ingest --session {label}`"


def promote(label: str, tag: str, series: str) -> str:
    return f"`datman-flow gold promote --session {label} --tag {tag} --series {series}`"


def shown(value: str) -> str:
    """A recorded parameter value (JSON) as the drift tables show it."""
    try:
        return format_value(json.loads(value))
    except ValueError:
        return value


def drift_problems(facts: SessionFacts) -> list[Problem]:
    """Software upgrades first, then the other drifted parameters per series."""
    label, out = facts.label, []
    upgrades: dict[tuple[str, str], HeaderDiffRow] = {}
    for d in facts.diffs:
        if d.kind == "software_upgrade":
            upgrades.setdefault((d.expected, d.actual), d)
    for (old, new), d in sorted(upgrades.items()):
        out.append(Problem("software_upgrade", f"software upgrade {shown(old)} -> {shown(new)}",
                           f"confirm the upgrade with the site, then promote the new reference per tag, e.g. "
                           f"{promote(label, d.tag, d.series_number)}"))
    by_series: dict[tuple[str, str], set[str]] = {}
    for d in facts.diffs:
        if d.kind != "software_upgrade":
            by_series.setdefault((d.tag, d.series_number), set()).add(d.field)
    for (tag, number), fields in sorted(by_series.items()):
        out.append(Problem("drift", f"{tag} drifted: {', '.join(sorted(fields))}",
                           f"ask the site whether the protocol was changed on purpose; if so, "
                           f"{promote(label, tag, number)}"))
    out += [Problem("header", f"series {','.join(c.series)} ({c.tag}) header not checkable: {c.detail}",
                    "see the header_drift check of the nifti asset") for c in facts.checks
            if c.check_name == HEADER_DRIFT and c.passed is False and not c.found]
    return out


def failed_problem(facts: SessionFacts, run_error: str) -> Problem | None:
    row = facts.session
    if row is not None and row.status == "rejected":
        return Problem("rejected", f"not ingested: {row.reason}",
                       "rename the session on XNAT to STUDY_SITE_SUBJECT_TIMEPOINT_REPEAT, or add its study and "
                       "site to configs/studies/; the sensor picks it up on its next look")
    if not run_error and row is not None and row.status not in ("failed", "ingesting"):
        return None
    why = (row.reason if row is not None and row.status == "failed" and row.reason else "") or run_error or (
        f"the run ended with the session {row.status}" if row else "nothing recorded for the session")
    return Problem("failed", why, f"open the run in the Dagster UI; sessions whose transfer from XNAT failed are "
                                  f"retried after 10, 30 and 90 minutes; now: {rerun(facts.label)}")


def attention_problems(facts: SessionFacts) -> list[Problem]:
    label, out = facts.label, []
    for check in facts.checks:
        if check.check_name == EXPECTED_SERIES and check.passed is False:
            if (check.found or 0) < (check.expected or 0):
                out.append(Problem("missing", count_phrase(check), f"ask the site whether {check.tag} was acquired; "
                                                                    f"if it reaches XNAT the session is run again"))
            else:
                out.append(Problem("extra", count_phrase(check),
                                   "look at the series index (a repeated scan?) and the study's tag rules"))
    out += [Problem("transfer", f"scan {s.scan_id} not downloaded",
                    f"retried after 10, 30 and 90 minutes; now: {rerun(label)}")
            for s in facts.series if s.download_status != "complete"]
    out += [Problem("conversion", f"series {s.series_number} ({s.tag}) not converted",
                    "see the conversion table of the nifti asset") for s in facts.series
            if s.tag and s.conversion_status == "failed"]
    out += drift_problems(facts)
    out += [Problem("qc_outlier", f"QC outlier in series {','.join(c.series)} ({c.tag}): {c.detail}",
                    "look at the series' QC picture and rate it") for c in facts.checks
            if c.check_name == QC_OUTLIERS and c.passed is False]
    out += [Problem("qc_failed", f"QC of series {q.series_number} ({q.tag}) failed: {q.message}",
                    "see the problems table of the qc_metrics asset") for q in facts.qc if q.status == "failed"]
    return out


def judge(facts: SessionFacts, run_error: str = "") -> Health:
    """The verdict of one session from its recorded facts (and the run's error, when it failed)."""
    failed = failed_problem(facts, run_error)
    if failed is not None:
        return Health(FAILED, (failed,))
    problems = attention_problems(facts)
    return Health(ATTENTION, tuple(problems)) if problems else Health(OK)


def health_outcome(health: Health) -> CheckOutcome:
    """The verdict as the `healthy` check shows it: passed when ok, a warning for attention."""
    return CheckOutcome(HEALTHY, health.verdict == OK, "warn" if health.verdict == ATTENTION else "error",
                        str(health), {"health": health.verdict, "problems": len(health.problems)})


def record_health(layout: DataLayout, label: str, health: Health, facts: SessionFacts) -> None:
    """The verdict on the session's row of the `sessions` table (a row is made when the run
    failed before recording one)."""
    row = facts.session or SessionRow(session=label, status="failed", reason=health.line)
    if row.status == "rejected":
        return
    layout.metric_store.replace(SessionRow, label, [dataclasses.replace(
        row, health=health.verdict, health_reasons=health.line)])


def health_step(layout: DataLayout, label: str, run_error: str = "") -> Health:
    """Judge a session whose run has just finished, and record the verdict."""
    facts = read_facts(layout, label)
    health = judge(facts, run_error)
    record_health(layout, label, health, facts)
    return health
