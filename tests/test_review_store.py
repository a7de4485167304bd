"""The review tables' foundations: rows added and never replaced, ids unique under concurrent
writers (threads and processes), the incremental table cache, the review state of a session,
and reviewers' accounts."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from datman_flow.layout import DataLayout
from datman_flow.pipeline.review_state import (
    BLACKLISTED,
    CLEARED,
    FAILED,
    PASSED,
    PENDING,
    read_review,
    review_outcome,
    review_state,
)
from datman_flow.review.accounts import AccountError, Accounts
from datman_flow.review.scales import Display, Rating, Step
from datman_flow.store import MetricStore
from datman_flow.store.append import IDS_DIR
from datman_flow.store.review_rows import RatingImageRow, RatingRow, SeriesDecisionRow, SignOffRow
from datman_flow.store.table_cache import TableCache

LABEL = "SPN01_CMH_0001_01_01"
T0 = datetime(2026, 11, 30, 9, 0, 0)


def rating(value: int, img: int = 1, at: datetime = T0, user: str = "alice", notes: str = "") -> RatingRow:
    return RatingRow(0, False, value, img, 1, notes, at, LABEL, user)


def image(series: str = "3", display: int = Display.Z, slice_: int = 88) -> RatingImageRow:
    return RatingImageRow(0, f"nii/x/{LABEL}_T1_{series}_review-z.png", slice_, f"nii/x/{LABEL}_T1_{series}.nii.gz",
                          None, display, Step.RAW_T1W, T0, LABEL, series, "T1", 400, 400)


def _append_many(data_dir: str, worker: int, count: int) -> None:
    store = MetricStore.under(Path(data_dir))
    for k in range(count):
        store.append(RatingRow, LABEL, [rating(k % 3, notes=f"w{worker}-{k}")])


def test_rows_are_added_never_replaced_with_ids_in_order(tmp_path):
    store = MetricStore.under(tmp_path)
    first = store.append(RatingRow, LABEL, [rating(Rating.PASS), rating(Rating.FAIL)])
    again = store.append(RatingRow, LABEL, [rating(Rating.UNSURE)])
    assert [r.id for r in first] == [1, 2] and [r.id for r in again] == [3]
    assert [(r.id, r.rating) for r in store.read(RatingRow, LABEL)] == [(1, 0), (2, 2), (3, 1)]
    with pytest.raises(TypeError, match="ratings takes RatingRow rows, not SignOffRow"):
        store.append(RatingRow, LABEL, [SignOffRow(0, LABEL, "alice", "", T0)])


def test_unique_keys_register_a_picture_once(tmp_path):
    store = MetricStore.under(tmp_path)
    key = lambda r: (r.slice, r.file1, r.display, r.step)  # noqa: E731
    assert len(store.append(RatingImageRow, LABEL, [image(), image(), image(display=Display.X)], unique=key)) == 2
    assert store.append(RatingImageRow, LABEL, [image()], unique=key) == []
    assert len(store.read(RatingImageRow, LABEL)) == 2


def test_concurrent_writers_lose_nothing_and_never_share_an_id(tmp_path):
    threads = [threading.Thread(target=_append_many, args=(str(tmp_path), w, 15)) for w in range(3)]
    procs = [multiprocessing.get_context("spawn").Process(target=_append_many, args=(str(tmp_path), 10 + w, 15))
             for w in range(2)]
    for t in [*threads, *procs]:
        t.start()
    for t in [*threads, *procs]:
        t.join(120)
    assert all(p.exitcode == 0 for p in procs)
    rows = MetricStore.under(tmp_path).read(RatingRow, LABEL)
    assert len(rows) == 75 and sorted(r.id for r in rows) == list(range(1, 76))
    assert len({r.notes for r in rows}) == 75


def test_a_lost_counter_is_rebuilt_from_the_largest_id(tmp_path):
    store = MetricStore.under(tmp_path)
    store.append(RatingRow, LABEL, [rating(0)] * 3)
    (store.parquet_dir / IDS_DIR / "ratings.next").write_text("garbage")
    assert [r.id for r in store.append(RatingRow, "SPN01_CMH_0002_01_01", [rating(1)])] == [4]


def test_the_cache_reads_again_only_what_changed(tmp_path):
    store = MetricStore.under(tmp_path)
    store.append(RatingRow, LABEL, [rating(0)])
    cache = TableCache(store.parquet_dir, RatingRow)
    assert [r.rating for r in cache.rows()] == [0] and cache.refresh() is False
    version = cache.version
    store.append(RatingRow, "SPN01_CMH_0002_01_01", [rating(2)])
    assert sorted(r.rating for r in cache.rows()) == [0, 2] and cache.version == version + 1
    (store.parquet_dir / "ratings" / f"{LABEL}.parquet").unlink()
    assert [r.rating for r in cache.rows()] == [2]
    (store.parquet_dir / "ratings" / "SPN01_CMH_0003_01_01.parquet").write_bytes(b"not parquet at all")
    assert [r.rating for r in cache.rows()] == [2]  # the bad file is quarantined, the rest stands
    assert [q.file_name for q in store.quarantined()] == ["SPN01_CMH_0003_01_01.parquet"]


def test_review_state_pending_failed_passed_and_settled():
    img = [dataclasses.replace(image(), id=1)]
    assert review_state(LABEL, img, [], [], []).state == PENDING
    fail = RatingRow(5, False, Rating.FAIL, 1, 1, "motion", T0, LABEL, "alice")
    state = review_state(LABEL, img, [fail], [], [])
    assert state.state == FAILED and state.line == "series 3 (T1) axial slice 88 rated FAIL by alice: motion"
    assert not state.settled and review_outcome(state).severity == "error"
    later_pass = RatingRow(6, False, Rating.PASS, 1, 2, "", T0 + timedelta(minutes=1), LABEL, "bob")
    signoff = SignOffRow(1, LABEL, "bob", "fine", T0 + timedelta(minutes=2))
    state = review_state(LABEL, img, [fail, later_pass], [signoff], [])
    assert state.state == PASSED and state.ratings == 2 and review_outcome(state).passed
    black = SeriesDecisionRow(1, LABEL, "3", "T1", BLACKLISTED, "ghosting", "bob", T0 + timedelta(minutes=3))
    state = review_state(LABEL, img, [later_pass], [signoff], [black])
    assert state.state == FAILED and state.blacklisted == ("3",) and not state.settled
    cleared = SeriesDecisionRow(2, LABEL, "3", "T1", CLEARED, "", "bob", T0 + timedelta(minutes=4))
    assert review_state(LABEL, img, [later_pass], [signoff], [black, cleared]).state == PASSED
    pending = review_outcome(review_state(LABEL, img, [], [], []))
    assert not pending.passed and pending.severity == "warn" and pending.description.startswith("pending: ")


def test_read_review_from_the_store(tmp_path):
    layout = DataLayout(tmp_path)
    [img] = layout.metric_store.append(RatingImageRow, LABEL, [image()])
    layout.metric_store.append(RatingRow, LABEL, [rating(Rating.FAIL, img=img.id)])
    assert read_review(layout, LABEL).state == FAILED
    assert read_review(layout, "SPN01_CMH_0009_01_01").state == PENDING


def test_accounts_hash_passwords_and_tokens(tmp_path):
    accounts = Accounts(tmp_path)
    accounts.add("alice", "correct horse")
    text = accounts.path.read_text()
    assert "correct horse" not in text and json.loads(text)["alice"]["password"].startswith("scrypt$")
    assert os.stat(accounts.path).st_mode & 0o007 == 0
    assert accounts.verify("alice", "correct horse") and not accounts.verify("alice", "wrong horse")
    assert not accounts.verify("mallory", "correct horse") and not accounts.verify("alice", "x" * 5000)
    token = accounts.new_token("alice")
    assert token not in accounts.path.read_text() and accounts.user_for_token(token) == "alice"
    assert accounts.user_for_token("x" * 40) is None and accounts.user_for_token("") is None
    for bad_name in ("", "../x", "a b", "x" * 65):
        with pytest.raises(AccountError, match="reviewer name"):
            accounts.add(bad_name, "long enough")
    with pytest.raises(AccountError, match="exists already"):
        accounts.add("alice", "another one")
    with pytest.raises(AccountError, match="8 to 1024"):
        accounts.add("bob", "short")
    accounts.path.write_text("[1, 2]")
    with pytest.raises(AccountError, match="not a reviewers file"):
        accounts.verify("alice", "correct horse")
