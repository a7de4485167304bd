"""A session's file removed by another process while a reader's query runs (DuckDB lists a
table's files first and opens each as it reads) costs that reader a second read, not its run.
Found in the soak: a refresh of the study views failed while session runs wrote the store."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import duckdb
import pytest

from datman_flow.store import MetricStore, SeriesRow, SessionRow
from datman_flow.store.files import read_session_rows
from datman_flow.store.read_again import VANISHED_READS, ReadAgain, vanished_store_file
from datman_flow.store.table_cache import TableCache

SESSIONS = [f"S{n:03d}" for n in range(60)]
CHURN_SECONDS = 4.0


def rows_of(label: str) -> list[SeriesRow]:
    return [SeriesRow(session=label, scan_id=str(n), conversion_status="converted") for n in range(1, 4)]


def churn(data_dir: str, stop, removals) -> None:
    """Another session run: every few milliseconds one session's series file is removed (its rows
    replaced by none) or written back, atomically, as the store's own writes are."""
    store = MetricStore.under(Path(data_dir))
    n = 0
    while not stop.is_set():
        label = SESSIONS[n % len(SESSIONS)]
        store.replace(SeriesRow, label, [] if (n // len(SESSIONS)) % 2 == 0 else rows_of(label))
        removals.value += (n // len(SESSIONS)) % 2 == 0
        n += 1
        time.sleep(0.003)


@pytest.fixture
def busy_store(tmp_path):
    store = MetricStore.under(tmp_path)
    for label in SESSIONS:
        store.replace(SessionRow, label, [SessionRow(session=label, status="ingested")])
        store.replace(SeriesRow, label, rows_of(label))
    ctx = multiprocessing.get_context("spawn")
    stop, removals = ctx.Event(), ctx.Value("i", 0)
    writer = ctx.Process(target=churn, args=(str(tmp_path), stop, removals))
    writer.start()
    yield store, removals
    stop.set()
    writer.join(timeout=30)
    assert writer.exitcode == 0


def test_queries_over_a_table_whose_files_are_being_removed_all_answer(busy_store):
    store, removals = busy_store
    deadline, answered = time.monotonic() + CHURN_SECONDS, 0
    while time.monotonic() < deadline:
        [row] = store.query("SELECT count(DISTINCT session) AS n, count(*) AS rows FROM series")
        assert row["n"] <= len(SESSIONS) and row["rows"] == 3 * row["n"]
        answered += 1
    assert answered >= 10 and removals.value >= 50  # the reads really ran while files went away
    assert store.quarantined() == []  # a removed file is not a corrupt one


def test_the_table_cache_and_one_session_reads_pass_over_removed_files(busy_store):
    store, removals = busy_store
    cache = TableCache(store.parquet_dir, SeriesRow)
    deadline, reads = time.monotonic() + CHURN_SECONDS, 0
    while time.monotonic() < deadline:
        assert all(len(rows) in (0, 3) for rows in (read_session_rows(store.parquet_dir, SeriesRow, s)
                                                    for s in SESSIONS[:20]))
        assert len(cache.rows()) % 3 == 0
        reads += 1
    assert reads >= 5 and removals.value >= 50


def test_a_removed_store_file_is_read_again_a_bounded_number_of_times(tmp_path, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda _: None)
    store = MetricStore.under(tmp_path)
    store.replace(SessionRow, "S1", [SessionRow(session="S1", status="ingested")])
    gone = store.parquet_dir / "sessions" / "S2.parquet"
    error = duckdb.IOException(f'IO Error: Cannot open file "{gone}": No such file or directory')
    assert vanished_store_file(store.parquet_dir, error) == gone
    again = ReadAgain(store.parquet_dir)
    assert all(again(error) for _ in range(VANISHED_READS))
    assert not again(error)  # then the error is the caller's
    assert ReadAgain(store.parquet_dir)(error)  # the next read has its own count
    # a file named in a list; one written again since (removed, then back) is read again too
    listed = duckdb.IOException(f'IO Error: No files found that match the pattern "{gone}"')
    back = store.parquet_dir / "sessions" / "S1.parquet"
    written_again = duckdb.IOException(f'IO Error: Cannot open file "{back}": No such file or directory')
    assert vanished_store_file(store.parquet_dir, listed) == gone
    assert vanished_store_file(store.parquet_dir, written_again) == back
    # a file outside the store's tables is the caller's error at once
    outside = duckdb.IOException(f'IO Error: Cannot open file "{tmp_path / "x.parquet"}": No such file or directory')
    assert vanished_store_file(store.parquet_dir, outside) is None
    assert not ReadAgain(store.parquet_dir)(outside)
