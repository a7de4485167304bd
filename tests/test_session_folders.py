"""A session's folders stay its own: one run at a time per session, and files of scans that
vanished from XNAT removed (only inside the session's folders)."""

from __future__ import annotations

import threading
import time

import pytest

from datman_flow.config import load_config
from datman_flow.layout import DataLayout
from datman_flow.pipeline.convert import prune_vanished_outputs
from datman_flow.pipeline.locks import SessionBusy, session_lock
from datman_flow.pipeline.pull import prune_vanished_scans
from datman_flow.pipeline.resolve import resolve_session
from datman_flow.records import SeriesRecord

from pipeline_helpers import CONFIGS

LABEL = "SPN01_CMH_0001_01_01"


def test_two_runs_of_one_session_take_turns_and_a_long_wait_fails_with_the_holder(tmp_path):
    layout = DataLayout(tmp_path)
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with session_lock(layout, LABEL, "the pull"):
            held.set()
            order.append("first in")
            time.sleep(0.5)
            order.append("first out")

    worker = threading.Thread(target=first)
    worker.start()
    held.wait(5)
    with pytest.raises(SessionBusy, match=r"being processed by pid \d+ \(the pull, since .*gave up waiting after 0 s"):
        with session_lock(layout, LABEL, "the conversion", wait_seconds=0.1):
            pass
    with session_lock(layout, LABEL, "the conversion", wait_seconds=10):
        order.append("second in")
    worker.join()
    assert order == ["first in", "first out", "second in"]
    with session_lock(layout, "SPN01_CMH_0002_01_01", "the pull", wait_seconds=0):  # other sessions never wait
        pass


def test_scan_folders_that_xnat_no_longer_lists_are_removed_and_nothing_else(tmp_path):
    raw = tmp_path / "raw" / LABEL
    for name in ("2", "5", "7", ".7.partial-x"):
        (raw / name).mkdir(parents=True)
        (raw / name / "f.dcm").write_bytes(b"x")
    (tmp_path / "raw" / "OTHER").mkdir()
    assert prune_vanished_scans(raw, {"2", "5"}) == ["7"]
    assert sorted(p.name for p in raw.iterdir()) == [".7.partial-x", "2", "5"]
    assert (tmp_path / "raw" / "OTHER").exists()


def test_outputs_of_series_the_session_no_longer_has_are_removed(tmp_path):
    layout = DataLayout(tmp_path)
    target = resolve_session(load_config(CONFIGS), LABEL)
    nii = layout.nii(target.scan_id)
    nii.mkdir(parents=True)
    kept = [f"{LABEL}_T1_02_T1w-MPRAGE{ext}" for ext in (".nii.gz", ".json", "_qc.json", "_qc.png")]
    gone = [f"{LABEL}_RST_05_rest-BOLD{ext}" for ext in (".nii.gz", ".json")]
    other_session = "SPN01_CMH_0001_01_02_RST_05_rest-BOLD.nii.gz"  # the same subject and timepoint, repeat 02
    for name in [*kept, *gone, other_session, "notes.txt"]:
        (nii / name).write_bytes(b"x")
    series = [SeriesRecord(session=LABEL, scan_id="2", series_number="2", description="T1w MPRAGE",
                           download_status="complete", tag="T1")]
    assert sorted(prune_vanished_outputs(layout, target, series)) == sorted(gone)
    assert sorted(p.name for p in nii.iterdir()) == sorted([*kept, other_session, "notes.txt"])


def test_a_session_stuck_in_ingesting_is_run_again_unless_a_run_holds_it(tmp_path):
    from datetime import UTC, datetime, timedelta

    from datman_flow.pipeline import watch
    from datman_flow.pipeline.locks import is_locked
    from datman_flow.store import SessionRow

    layout = DataLayout(tmp_path)
    long_ago = datetime.now().replace(microsecond=0) - timedelta(hours=5)
    for label, when in ((LABEL, long_ago), ("SPN01_CMH_0002_01_01", datetime.now().replace(microsecond=0))):
        layout.metric_store.replace(SessionRow, label, [SessionRow(session=label, status="ingesting", ingested_at=when)])
    state, now = watch.WatchState(), datetime.now(UTC)
    with session_lock(layout, LABEL, "the pull"):  # a run is still at work on it: leave it alone
        assert watch.book_stuck(state, layout, now, timedelta(hours=3), lambda label: is_locked(layout, label)) == []
    said = watch.book_stuck(state, layout, now, timedelta(hours=3), lambda label: is_locked(layout, label))
    assert len(said) == 1 and LABEL in said[0] and "no run is working on it" in said[0]
    assert state.retries.take_due(now) == [(LABEL, 1)]  # the recent one is not stuck
