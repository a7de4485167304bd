"""Everything the CLI prints for a person: a session run, the compliance table, status lines, alerts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from datman_flow.checks.expected_series import CHECK_NAME as EXPECTED_SERIES
from datman_flow.checks.expected_series import count_phrase
from datman_flow.pipeline.alerts import AlertReport
from datman_flow.pipeline.compliance import HEADERS, NOTHING_YET, TagCompliance, compliance_rows
from datman_flow.pipeline.health import HEALTHY
from datman_flow.pipeline.review_state import REVIEW
from datman_flow.pipeline.summary import tag_or_reason
from datman_flow.store.quarantine import QuarantinedFile
from datman_flow.store.rows import CheckRow

if TYPE_CHECKING:  # Dagster is imported only when a session runs
    from datman_flow.cli.status import SessionStatus
    from datman_flow.defs.runner import SessionRun


def run_health(run: SessionRun) -> tuple[str, list[str]]:
    """The session's verdict (pipeline/health.py, judged when its run finished) and why it is not ok."""
    if run.health is not None:
        return run.health.verdict, list(run.health.reasons)
    return "failed", [run.error or "the run did not start"]


def health_text(verdict: str, reasons: Sequence[str]) -> str:
    """`ok`, `attention (why; why)` or `FAILED: why`."""
    why = "; ".join(reasons)
    if verdict == "failed":
        return f"FAILED: {why}"
    return f"{verdict} ({why})" if why else verdict


def run_text(run: SessionRun) -> str:
    lines = [f"\n== {run.label}: {health_text(*run_health(run))}"]
    for s in run.series:
        outcome = s.conversion_status if s.tag else "-"
        note = s.conversion_message if s.conversion_status == "failed" else ""
        lines.append(f"  {s.series_number:>6}  {s.description[:34]:34}  {tag_or_reason(s)[:60]:60}  "
                     f"{s.n_files:>5} files  {outcome}{'  ' + note if note else ''}")
    review = ""
    for name, passed, description, severity in run.checks:
        if name == HEALTHY:  # the header above says it
            continue
        if name == REVIEW:  # not a finding of the run: what people have said of the session so far
            review = f"  review: {description}"
            continue
        verdict = "PASS" if passed else ("FAIL" if severity == "WARN" else "FAIL, severity error")
        lines.append(f"  check {name}: {verdict} ({description})")
    if run.qc:
        lines.append(f"  qc metrics: {run.qc.get('measured', 0)} series measured, {run.qc.get('failed', 0)} failed")
        for line in str(run.qc.get("problems", "")).splitlines()[2:]:
            lines.append(f"    {line.strip('| ').replace(' | ', ': ', 1).replace(' | ', ' ')}")
    if review:
        lines.append(review)
    return "\n".join(lines)


def print_run(run: SessionRun) -> None:
    print(run_text(run))


def table_text(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest value, no borders."""
    cells = [tuple(str(v) for v in row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def compliance_text(report: list[TagCompliance]) -> str:
    rows = compliance_rows(report)
    return table_text(HEADERS, rows) if rows else NOTHING_YET


def check_outcome(row: CheckRow) -> str:
    """One outcome, short: 'missing DTI60 (0/1)', 'T1 series 3: EchoTime changed'."""
    if row.check_name == EXPECTED_SERIES and row.expected is not None and row.found is not None:
        return count_phrase(row)
    where = " ".join(p for p in (row.tag or "", f"series {', '.join(row.series)}" if row.series else "") if p)
    detail = row.detail.replace("; ", ", ")
    return f"{where}: {detail}" if where and detail else where or detail or "?"


def check_texts(rows: Sequence[CheckRow]) -> dict[str, str]:
    """Each check of a session in one phrase: 'PASS', 'FAIL missing DTI60 (0/1)', 'NOT EVALUATED
    T1 series 3: no reference yet', or 'FAIL ...; not evaluated: ...'."""
    by_check: dict[str, list[CheckRow]] = {}
    for row in rows:
        by_check.setdefault(row.check_name, []).append(row)
    texts = {}
    for name, outcomes in by_check.items():
        failed = [check_outcome(r) for r in outcomes if r.passed is False]
        unknown = [check_outcome(r) for r in outcomes if r.passed is None]
        parts = [f"FAIL {'; '.join(failed)}"] if failed else []
        if unknown:
            parts.append(f"{'not evaluated: ' if failed else 'NOT EVALUATED '}{'; '.join(unknown)}")
        texts[name] = "; ".join(parts) or "PASS"
    return texts


def arrival_line(label: str, note: str, at: datetime, colour: bool) -> str:
    """The demo's own news, set apart from Dagster's log lines (bold cyan on a terminal)."""
    line = f"==> [demo] {at:%H:%M:%S} session {label} arrived on XNAT ({note})"
    return f"\033[1;36m{line}\033[0m" if colour else line


def as_json_value(value: object) -> object:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def status_lines(sessions: Sequence[SessionStatus]) -> list[str]:
    """One JSON object per session (for grep and jq): the summary's fields and `checks`."""
    return [json.dumps({**asdict(s.summary), "checks": s.checks, "review": s.review}, default=as_json_value)
            for s in sessions]


STATUS_HEADERS = ("session", "scan date", "status", "health", "converted", "qc", "review", "why", "checks")
VERDICT_ORDER = ("failed", "attention", "ok", "not evaluated")


def status_table(sessions: Sequence[SessionStatus]) -> str:
    """An aligned table for people, one line per session, and a count of each verdict."""
    rows = []
    for s in sessions:
        m = s.summary
        qc = f"{m.qc_measured}" + (f", {m.qc_flagged} flagged" if m.qc_flagged else "") + (
            f", {m.qc_failed} failed" if m.qc_failed else "")
        not_passed = "; ".join(f"{name}: {text}" for name, text in s.checks.items() if text != "PASS")
        checks = not_passed or ("pass" if s.checks else "")
        review = f"{s.review} ({s.findings})" if s.findings else s.review or "-"
        rows.append((m.session, m.scan_date or "", m.status, m.health or "-", f"{m.converted}/{m.series}", qc,
                     review, m.health_reasons or m.reason, checks))
    verdicts = [s.summary.health or "not evaluated" for s in sessions]
    order = [*VERDICT_ORDER, *sorted(set(verdicts) - set(VERDICT_ORDER))]
    total = f"{len(sessions)} session(s)" + (": " if verdicts else "") + ", ".join(
        f"{verdicts.count(v)} {v}" for v in order if v in verdicts)
    return table_text(STATUS_HEADERS, rows) + "\n" + total


def quarantine_lines(quarantined: Sequence[QuarantinedFile], store_dir: Path) -> list[str]:
    """One line per unreadable store file that was moved aside: a warning while its session
    has not written it again, a note after."""
    lines = []
    for q in quarantined:
        whose = f"session {q.session}" if q.session else "schema file"
        where = f"{store_dir / q.table / q.file_name} ({whose}, table {q.table})"
        if q.replaced:
            lines.append(f"note: {where} was unreadable and quarantined at {q.quarantined_at} as {q.path}; "
                         f"written again since")
        else:
            todo = f"re-ingest {q.session} to write it again" if q.session else "it is written again on next use"
            lines.append(f"warning: quarantined {where} at {q.quarantined_at}: not a readable Parquet file, "
                         f"kept as {q.path}; its rows are missing from the store: {todo}")
    return lines


def alert_report_lines(report: AlertReport) -> tuple[list[str], list[str]]:
    """What one alert step did: (lines for stdout, lines for stderr: notes and failures)."""
    out = [f"would send: {item.line()}  ({item.title})" for item in report.would_send]
    out += [f"sent: {item.line()}  ({item.title})" for item in report.sent]
    err = [f"note: {line}" for line in report.notes]
    err += [f"failed (tried again next time): {item.line()}" for item in report.failed]
    err += [f"given up after {item.attempts} attempts in 24 h: {item.line()}" for item in report.gave_up]
    return [*out, report.summary()], err
