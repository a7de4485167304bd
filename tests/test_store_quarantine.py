"""One unreadable Parquet file costs its own session's rows, never the table: it is moved into
<data>/store/_quarantine/, named in a warning, and the query goes on over the other files."""

from __future__ import annotations

import logging

import duckdb
import pytest

from datman_flow.store import CheckRow, MetricStore, SeriesRow, SessionRow
from datman_flow.store.quarantine import quarantine_after
from datman_flow.store.queries import session_summaries

GOOD = ["S01", "S02", "S03"]


def store_with(tmp_path, labels=GOOD) -> MetricStore:
    store = MetricStore.under(tmp_path)
    for label in labels:
        store.replace(SessionRow, label, [SessionRow(session=label, status="ingested")])
        store.replace(SeriesRow, label, [SeriesRow(session=label, scan_id="1", conversion_status="converted")])
    return store


def truncate(path, keep: int | None = None) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])
    return path.read_bytes()


def quarantine_folder(store: MetricStore, table: str):
    return store.parquet_dir / "_quarantine" / table


@pytest.mark.parametrize("keep", [None, 0], ids=["truncated", "zero-bytes"])
def test_unreadable_file_is_quarantined_and_the_other_sessions_stay_readable(tmp_path, caplog, keep):
    store = store_with(tmp_path)
    bad = store.parquet_dir / "sessions" / "S02.parquet"
    left = truncate(bad, keep)
    with caplog.at_level(logging.WARNING):
        got = store.query("SELECT session FROM sessions ORDER BY session")
    assert got == [{"session": "S01"}, {"session": "S03"}]
    assert not bad.exists()
    moved = list(quarantine_folder(store, "sessions").iterdir())
    assert len(moved) == 1 and moved[0].name.startswith("S02.parquet.")
    assert moved[0].read_bytes() == left  # kept as it was, not deleted
    assert "S02.parquet" in caplog.text and "session S02" in caplog.text and "_quarantine" in caplog.text
    # the other tables are untouched, and a join over them works
    assert [(o.session, o.series) for o in session_summaries(store)] == [("S01", 1), ("S03", 1)]
    [listed] = store.quarantined()
    assert (listed.table, listed.session, listed.file_name, listed.replaced) == ("sessions", "S02", "S02.parquet", False)


def test_two_bad_files_in_two_tables_are_both_quarantined(tmp_path):
    store = store_with(tmp_path)
    truncate(store.parquet_dir / "sessions" / "S01.parquet", 0)
    truncate(store.parquet_dir / "series" / "S03.parquet")
    assert [(o.session, o.series) for o in session_summaries(store)] == [("S02", 1), ("S03", 0)]
    assert sorted((q.table, q.session) for q in store.quarantined()) == [("series", "S03"), ("sessions", "S01")]


def test_rewriting_the_session_makes_it_visible_again(tmp_path):
    store = store_with(tmp_path)
    truncate(store.parquet_dir / "sessions" / "S02.parquet")
    assert len(store.query("SELECT * FROM sessions")) == 2
    store.replace(SessionRow, "S02", [SessionRow(session="S02", status="ingested")])  # what a re-ingest does
    assert [r["session"] for r in store.query("SELECT session FROM sessions ORDER BY 1")] == GOOD
    [listed] = store.quarantined()
    assert listed.replaced  # still kept, but marked as written again


def test_reading_a_sessions_own_unreadable_file_quarantines_it(tmp_path, caplog):
    store = store_with(tmp_path)
    truncate(store.parquet_dir / "series" / "S01.parquet")
    with caplog.at_level(logging.WARNING):
        assert store.read(SeriesRow, "S01") == []
    assert "S01.parquet" in caplog.text
    assert [q.session for q in store.quarantined()] == ["S01"]
    assert len(store.read(SeriesRow, "S02")) == 1


def test_check_parts_and_the_schema_file(tmp_path):
    store = store_with(tmp_path, ["S01"])
    store.replace(CheckRow, "S01", [CheckRow("S01", "x", passed=True)], part="x")
    store.replace(CheckRow, "S01", [CheckRow("S01", "y", passed=True)], part="y")
    truncate(store.parquet_dir / "check_results" / "S01.x.parquet")
    truncate(store.parquet_dir / "check_results" / "_schema.parquet", 0)
    assert store.query("SELECT check_name FROM check_results") == [{"check_name": "y"}]
    assert sorted((q.file_name, q.session) for q in store.quarantined()) == [("S01.x.parquet", "S01"),
                                                                            ("_schema.parquet", "")]
    assert (store.parquet_dir / "check_results" / "_schema.parquet").stat().st_size > 0  # written again


def test_a_bad_query_is_an_error_as_before_and_moves_nothing(tmp_path):
    store = store_with(tmp_path)
    with pytest.raises(duckdb.BinderException, match="nosuch"):
        store.query("SELECT nosuch FROM sessions")
    assert store.quarantined() == []


def test_an_error_naming_no_file_looks_at_every_file(tmp_path):
    store = store_with(tmp_path)
    truncate(store.parquet_dir / "series" / "S02.parquet")
    moved = quarantine_after(store.parquet_dir, duckdb.InvalidInputException("Corrupt Parquet page header"))
    assert [(q.table, q.session) for q in moved] == [("series", "S02")]
    assert quarantine_after(store.parquet_dir, duckdb.InvalidInputException("Corrupt Parquet page header")) == []
