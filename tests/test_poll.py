"""Polling XNAT: new sessions wait until they have settled, and a session whose scans change
on XNAT after its run is run again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datman_flow.config import load_config
from datman_flow.pipeline.poll import (
    DEFAULT_OVERLAP,
    XNAT_TIME_FORMATS,
    PollCursor,
    PollResult,
    ProjectCursor,
    parse_insert_date,
    poll_project,
)
from datman_flow.xnat import Experiment

from pipeline_helpers import CONFIGS

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SETTLE = timedelta(minutes=10)


def exp(label: str, inserted: str = "2026-11-30 11:59:00.000", modified: str = "") -> Experiment:
    return Experiment(id=f"E_{label}", label=label, project="SPINS_CMH", date="2026-11-30", xsi_type="xnat:mrSessionData",
                      insert_date=inserted, uri="", last_modified=modified)


def look(config, experiments, cursor: ProjectCursor, minutes: float) -> tuple[PollResult, ProjectCursor]:
    result = PollResult(new=[], rejected=[], cursor=PollCursor())
    after = poll_project(config, experiments, "SPINS_CMH", cursor, DEFAULT_OVERLAP, result,
                         T0 + timedelta(minutes=minutes), SETTLE)
    return result, ProjectCursor.from_dict(after.as_dict())  # through JSON, as the cursor is kept


def test_a_new_session_waits_until_it_has_been_quiet_for_the_settle_window():
    config = load_config(CONFIGS)
    arriving = "SPN01_CMH_0001_01_01"
    result, cursor = look(config, [exp(arriving, modified="2026-11-30 11:59:00.000")], ProjectCursor(), 0)
    assert result.new == [] and result.pending == [arriving]
    result, cursor = look(config, [exp(arriving, modified="2026-11-30 12:04:00.000")], cursor, 6)  # a scan came in
    assert result.new == [] and result.pending == [arriving]
    result, cursor = look(config, [exp(arriving, modified="2026-11-30 12:04:00.000")], cursor, 12)  # 6 quiet minutes
    assert result.new == []
    result, cursor = look(config, [exp(arriving, modified="2026-11-30 12:04:00.000")], cursor, 16.5)  # 10.5
    assert [(n.target.label, n.changed, n.run_key) for n in result.new] == [(arriving, False, arriving)]
    result, cursor = look(config, [exp(arriving, modified="2026-11-30 12:04:00.000")], cursor, 30)
    assert result.new == [] and result.pending == []  # once only


def test_a_session_changed_on_xnat_after_its_run_is_run_again_once_settled():
    config = load_config(CONFIGS)
    label = "SPN01_CMH_0002_01_01"
    no_wait = timedelta(0)
    result = PollResult(new=[], rejected=[], cursor=PollCursor())
    cursor = poll_project(config, [exp(label, modified="m1")], "SPINS_CMH", ProjectCursor(), DEFAULT_OVERLAP,
                          result, T0, no_wait)
    assert [n.changed for n in result.new] == [False]
    result, cursor = look(config, [exp(label, modified="m1")], cursor, 5)
    assert result.new == []
    result, cursor = look(config, [exp(label, modified="m2")], cursor, 60)  # a scan added a day later
    assert result.new == [] and result.pending == [label]
    result, cursor = look(config, [exp(label, modified="m2")], cursor, 71)
    assert [(n.changed, n.run_key) for n in result.new] == [(True, f"{label}#changed@m2")]
    result, cursor = look(config, [exp(label, modified="m2")], cursor, 80)
    assert result.new == []


def test_a_rejected_label_is_reported_once_and_an_old_cursor_is_still_read():
    config = load_config(CONFIGS)
    result, cursor = look(config, [exp("not-a-label")], ProjectCursor(), 0)
    assert [r.experiment.label for r in result.rejected] == ["not-a-label"] and result.pending == []
    result, cursor = look(config, [exp("not-a-label")], cursor, 1)
    assert result.rejected == []
    old = PollCursor.from_json('{"http://x P": {"since": "2026-11-01 00:00:00.000", "recent": {"A": "x"}}}')
    assert old.projects["http://x P"].pending == {} and old.projects["http://x P"].recent == {"A": "x"}


def test_insert_dates_are_read_as_the_xnat_formats_say_and_nothing_else():
    """parse_insert_date takes a fast path (fromisoformat) for the usual forms; it must accept
    exactly what the three strptime formats accept, no ISO 'T', zone, comma or 7th digit."""
    def by_formats(text: str) -> datetime | None:
        for fmt in XNAT_TIME_FORMATS:
            try:
                return datetime.strptime(text.strip(), fmt)
            except ValueError:
                continue
        return None

    forms = ["2026-12-01 16:24:58.123", "2026-12-01 16:24:58", "2026-12-01", "2026-12-01 16:24:58.1",
             "2026-12-01 16:24:58.123456", " 2026-12-01 16:24:58.12 ", "2026-1-5 1:2:3", "2026-12-01T16:24:58",
             "2026-12-01 16:24:58+02:00", "2026-12-01 16:24:58,123", "2026-12-01 16:24:58.1234567", "20261201",
             "2026-13-01 00:00:00", "2026-12-01 16:24", "2026-12-01 16:24:58.", "", "garbage"]
    assert [parse_insert_date(f) for f in forms] == [by_formats(f) for f in forms]
    assert parse_insert_date("2026-12-01 16:24:58.123") == datetime(2026, 12, 1, 16, 24, 58, 123000)
    assert parse_insert_date("2026-12-01T16:24:58") is None
