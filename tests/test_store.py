"""The metric store: per-session Parquet files behind views in metrics.duckdb."""

from __future__ import annotations

import duckdb

from datman_flow.store import query, replace_session_rows
from datman_flow.store.files import session_file_name


def test_rerun_replaces_rows_never_duplicates(tmp_path):
    store, db = tmp_path / "store", tmp_path / "metrics.duckdb"
    rows = [{"session": "A", "scan_id": str(i), "n_files": i, "bad_files": []} for i in range(3)]
    replace_session_rows(store, "series", "A", rows)
    replace_session_rows(store, "series", "A", rows[:2])
    replace_session_rows(store, "series", "B", [{"session": "B", "scan_id": "9"}])
    got = query(db, store, "SELECT session, count(*) AS n FROM series GROUP BY session ORDER BY session")
    assert got == [{"session": "A", "n": 2}, {"session": "B", "n": 1}]


def test_empty_store_has_typed_tables(tmp_path):
    got = query(tmp_path / "metrics.duckdb", tmp_path / "store",
                "SELECT (SELECT count(*) FROM sessions) s, (SELECT count(*) FROM series) r, "
                "(SELECT count(*) FROM check_results) c")
    assert got == [{"s": 0, "r": 0, "c": 0}]


def test_database_file_is_usable_by_plain_duckdb(tmp_path):
    store, db = tmp_path / "store", tmp_path / "metrics.duckdb"
    replace_session_rows(store, "sessions", "A", [{"session": "A", "status": "ingested"}])
    query(db, store, "SELECT 1")
    with duckdb.connect(str(db), read_only=True) as con:  # what a lab member does in a shell
        assert con.execute("SELECT session, status FROM sessions").fetchall() == [("A", "ingested")]


def test_check_rows_are_replaced_per_check(tmp_path):
    store, db = tmp_path / "store", tmp_path / "metrics.duckdb"
    replace_session_rows(store, "check_results", "A", [{"session": "A", "check_name": "x", "passed": True}, {"session": "A", "check_name": "x", "passed": True}], part="x")
    replace_session_rows(store, "check_results", "A", [{"session": "A", "check_name": "y", "passed": False}], part="y")
    replace_session_rows(store, "check_results", "A", [{"session": "A", "check_name": "x", "passed": False}], part="x")
    got = query(db, store, "SELECT check_name, passed FROM check_results ORDER BY check_name")
    assert got == [{"check_name": "x", "passed": False}, {"check_name": "y", "passed": False}]


def test_unsafe_labels_get_hashed_file_names():
    assert session_file_name("SPN01_CMH_0001_01_01") == "SPN01_CMH_0001_01_01.parquet"
    unsafe = session_file_name("../../etc/passwd")
    assert "/" not in unsafe and unsafe.startswith("x-")


def test_moved_data_folder_gets_new_views(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    replace_session_rows(first / "store", "sessions", "A", [{"session": "A"}])
    assert query(first / "metrics.duckdb", first / "store", "SELECT count(*) n FROM sessions") == [{"n": 1}]
    first.rename(second)
    assert query(second / "metrics.duckdb", second / "store", "SELECT count(*) n FROM sessions") == [{"n": 1}]
