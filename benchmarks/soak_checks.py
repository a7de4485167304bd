"""What the soak test reads back at the end: from Dagster's event log in PostgreSQL, the peaks
of runs in progress, `raw_dicom` steps (pulls) and `qc_metrics` steps at once, and each
session's runs; from the metric store, each session's rows (once each, none missing)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster import DagsterEventType as Ev

from datman_flow.defs.after_run import failure_reason
from datman_flow.store.metric_store import MetricStore

END = {Ev.STEP_SUCCESS, Ev.STEP_FAILURE, Ev.RUN_SUCCESS, Ev.RUN_FAILURE, Ev.RUN_CANCELED}
EVENTS = {Ev.STEP_START, Ev.RUN_START} | END


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one instant (an end at t closes before a start at t)."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals], key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


@dataclass
class RunFacts:
    statuses: Counter = field(default_factory=Counter)  # every run, by final status
    per_label: dict[str, list[str]] = field(default_factory=dict)  # ingest runs of each session, statuses
    runs: list[tuple[float, float]] = field(default_factory=list)
    ingest_runs: list[tuple[float, float]] = field(default_factory=list)  # tagged datman/xnat: pulls_per_xnat
    refresh_runs: list[tuple[float, float]] = field(default_factory=list)  # refresh_study_views: one at a time
    failed: list[str] = field(default_factory=list)  # each failed run: job, partition, why
    pulls: list[tuple[float, float]] = field(default_factory=list)
    qc: list[tuple[float, float]] = field(default_factory=list)
    last_end: float | None = None  # of the last session run


def read_runs(instance: dg.DagsterInstance, now: float) -> RunFacts:
    facts = RunFacts()
    for record in instance.get_run_records():
        run = record.dagster_run
        facts.statuses[run.status.value] += 1
        label = run.tags.get("dagster/partition")
        if run.job_name == "ingest_session" and label:
            facts.per_label.setdefault(label, []).append(run.status.value)
        opened: dict[str, float] = {}
        run_spans: list[tuple[float, float]] = []  # one, unless the run was resumed
        spans = {"<run>": run_spans, "raw_dicom": facts.pulls, "qc_metrics": facts.qc}
        step_failures = []
        for entry in instance.all_logs(run.run_id, of_type=EVENTS):
            event = entry.dagster_event
            key = entry.step_key or "<run>"
            if event.event_type == Ev.STEP_FAILURE:
                step_failures.append(event)
            if event.event_type in (Ev.STEP_START, Ev.RUN_START):
                opened[key] = entry.timestamp
            elif key in opened:
                spans.get(key, []).append((opened.pop(key), entry.timestamp))
        if run.job_name == "ingest_session" and run_spans:  # the finished ones (before the still-open ones below)
            facts.last_end = max(facts.last_end or 0.0, *(end for _, end in run_spans))
        for key, start in opened.items():  # still open: counts up to now
            spans.get(key, []).append((start, now))
        facts.runs.extend(run_spans)
        if run.job_name == "ingest_session":
            facts.ingest_runs.extend(run_spans)
        elif run.job_name == "refresh_study_views":
            facts.refresh_runs.extend(run_spans)
        if run.status == dg.DagsterRunStatus.FAILURE:
            why = failure_reason(step_failures) if step_failures else "no step failed (see the run in the UI)"
            facts.failed.append(f"{run.job_name} {label or ''} {run.run_id[:8]}: {why[:300]}")
    return facts


@dataclass
class StoreFacts:
    missing: list[str] = field(default_factory=list)  # sessions without their rows
    duplicated: list[str] = field(default_factory=list)  # rows there more than once
    status: Counter = field(default_factory=Counter)  # sessions.status
    health: Counter = field(default_factory=Counter)


def check_store(data_dir: Path, labels: list[str], series_per_session: int) -> StoreFacts:
    """Each session: one `sessions` row, `series_per_session` series and qc_series rows (each
    once), its qc_metrics once per (series, metric)."""
    facts = StoreFacts()
    store = MetricStore.under(data_dir)
    if not store.exists:
        facts.missing = [f"{label}: no store" for label in labels]
        return facts
    counts = {
        "sessions": "select session, count(*) n, count(*) d from sessions group by session",
        "series": "select session, count(*) n, count(distinct scan_id) d from series group by session",
        "qc_series": "select session, count(*) n, count(distinct series_number) d from qc_series group by session",
        "qc_metrics": "select session, count(*) n, count(distinct (series_number, metric)) d from qc_metrics "
                      "group by session",
    }
    want = {"sessions": 1, "series": series_per_session, "qc_series": series_per_session, "qc_metrics": None}
    for table, sql in counts.items():
        found = {row["session"]: (row["n"], row["d"]) for row in store.query(sql)}
        for label in labels:
            n, d = found.get(label, (0, 0))
            if n > d:
                facts.duplicated.append(f"{label}: {table} {n} rows, {d} distinct")
            if (want[table] is not None and d < want[table]) or d == 0:
                facts.missing.append(f"{label}: {table} {d} of {want[table] or '>0'}")
    for row in store.query("select session, status, health from sessions"):
        if row["session"] in labels:
            facts.status[row["status"]] += 1
            facts.health[row["health"] or "(not judged)"] += 1
    return facts
