"""Everything the CLI prints for a person: a session run, the compliance table, status lines, alerts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from datman_flow.pipeline.alerts import AlertReport
from datman_flow.pipeline.compliance import HEADERS, NOTHING_YET, TagCompliance, compliance_rows
from datman_flow.pipeline.summary import tag_or_reason
from datman_flow.store.quarantine import QuarantinedFile
from datman_flow.store.queries import SessionOverview

if TYPE_CHECKING:  # Dagster is imported only when a session runs
    from datman_flow.defs.runner import SessionRun


def run_text(run: SessionRun) -> str:
    state = "ok" if run.success else f"FAILED: {run.error}"
    lines = [f"\n== {run.label}: {state}"]
    for s in run.series:
        outcome = s.conversion_status if s.tag else "-"
        note = s.conversion_message if s.conversion_status == "failed" else ""
        lines.append(f"  {s.series_number:>6}  {s.description[:34]:34}  {tag_or_reason(s)[:60]:60}  "
                     f"{s.n_files:>5} files  {outcome}{'  ' + note if note else ''}")
    for name, passed, description, severity in run.checks:
        verdict = "PASS" if passed else ("FAIL" if severity == "WARN" else "FAIL, severity error")
        lines.append(f"  check {name}: {verdict} ({description})")
    if run.qc:
        lines.append(f"  qc metrics: {run.qc.get('measured', 0)} series measured, {run.qc.get('failed', 0)} failed")
        for line in str(run.qc.get("problems", "")).splitlines()[2:]:
            lines.append(f"    {line.strip('| ').replace(' | ', ': ', 1).replace(' | ', ' ')}")
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


def status_lines(overview: Sequence[SessionOverview]) -> list[str]:
    """One JSON object per session (for grep and jq)."""
    return [json.dumps(asdict(row), default=str) for row in overview]


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
