"""`datman-flow status`: the operator's view of the metric store, one session a line: its
status, health and why, its review by people, its counts and each check's outcome."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from datman_flow.cli.render import check_texts, quarantine_lines, status_lines, status_table
from datman_flow.cli.validate import EXIT_USAGE, existing_data_dir, unknown_study
from datman_flow.layout import DataLayout
from datman_flow.pipeline.review_overview import review_states, state_of
from datman_flow.store.queries import SessionSummary, recorded_checks, session_summaries

NEEDS_ATTENTION = ("attention", "failed")

STATUS_HELP = """\
Every session recorded in the metric store: status, health (ok | attention | failed, '' until
its run has finished) and why, scan date, counts of series, failures, checks and QC, and each
check's outcome ("expected_series": "FAIL missing DTI60 (0/1)", PASS, NOT EVALUATED ...), and
its review in the review app ("review": pending | passed | failed).

Default output: one JSON object per session, sorted by session label (stable for jq and diff).
--table: an aligned table for people, newest scan first, with a count of each verdict.
Exit status 2 when the data folder does not exist or --study names an unknown study."""


@dataclass(frozen=True)
class SessionStatus:
    summary: SessionSummary
    checks: dict[str, str] = field(default_factory=dict)  # check name -> its outcome in one phrase
    review: str = ""  # pending | passed | failed
    findings: int = 0  # of a failed review


def newest_first(sessions: Sequence[SessionStatus]) -> list[SessionStatus]:
    """By scan date (else XNAT's insert date), newest first; sessions without a date last."""
    def when(s: SessionStatus) -> tuple[bool, date, datetime]:
        m = s.summary
        day = m.scan_date or (m.insert_date.date() if m.insert_date else None)
        return day is not None, day or date.min, m.insert_date or datetime.min

    return sorted(sorted(sessions, key=lambda s: s.summary.session), key=when, reverse=True)


def status(args: argparse.Namespace) -> int:
    data_dir = existing_data_dir(args.data_dir)
    if data_dir is None:
        return EXIT_USAGE
    layout = DataLayout(data_dir)
    store = layout.metric_store
    if args.study:
        problem = unknown_study(args.study, args.config_dir, store)
        if problem:
            print(problem, file=sys.stderr)
            return EXIT_USAGE
    if not store.exists:  # reading would create it: say so and create nothing
        print(f"no metric store in {data_dir} yet: no session has been recorded there", file=sys.stderr)
        summaries, checks, reviews = [], [], {}
    else:
        summaries, checks = session_summaries(store, args.study), recorded_checks(store, args.study)
        reviews = review_states(layout)
    by_session: dict[str, list] = {}
    for row in checks:
        by_session.setdefault(row.session, []).append(row)
    sessions = []
    for s in summaries:
        review = state_of(reviews, s.session)
        sessions.append(SessionStatus(s, check_texts(by_session.get(s.session, [])), review.state,
                                      len(review.findings)))
    if args.attention:
        sessions = [s for s in sessions if s.summary.health in NEEDS_ATTENTION]
    if args.table:
        print(status_table(newest_first(sessions)))
    else:
        for line in status_lines(sessions):
            print(line)
    if store.exists:
        for line in quarantine_lines(store.quarantined(), store.parquet_dir):
            print(line, file=sys.stderr)
    return 0
