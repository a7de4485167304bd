"""The metric store: typed rows written as per-session Parquet files behind views in metrics.duckdb."""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from datman_flow.store import TABLES, CheckRow, MetricStore, SeriesRow, SessionRow, query
from datman_flow.store.files import session_file_name
from datman_flow.store.rows import ROW_TYPES
from datman_flow.store.schema import sql_type


def test_rerun_replaces_rows_never_duplicates(tmp_path):
    store = MetricStore.under(tmp_path)
    rows = [SeriesRow(session="A", scan_id=str(i), n_files=i) for i in range(3)]
    store.replace(SeriesRow, "A", rows)
    store.replace(SeriesRow, "A", rows[:2])
    store.replace(SeriesRow, "B", [SeriesRow(session="B", scan_id="9")])
    got = store.query("SELECT session, count(*) AS n FROM series GROUP BY session ORDER BY session")
    assert got == [{"session": "A", "n": 2}, {"session": "B", "n": 1}]


def test_rows_read_back_as_the_same_typed_rows(tmp_path):
    store = MetricStore.under(tmp_path)
    written = [SeriesRow(session="A", scan_id="3", tag="T1", bad_files=("x.dcm",), outputs=("a.nii.gz", "a.json"))]
    store.replace(SeriesRow, "A", written)
    assert store.read(SeriesRow, "A") == written
    assert store.read(SeriesRow, "nobody") == []


def test_a_misspelt_column_is_an_error_not_a_silent_null(tmp_path):
    store = MetricStore.under(tmp_path)
    with pytest.raises(TypeError):
        SessionRow(session="A", stauts="ingested")  # type: ignore[call-arg]
    row = store.replace(SessionRow, "A", [SessionRow(session="A", status="ingested")])
    assert row.exists()
    with pytest.raises(AttributeError):
        store.read(SessionRow, "A")[0].stauts  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(TypeError, match="sessions takes SessionRow rows, not SeriesRow"):
        store.replace(SessionRow, "A", [SeriesRow(session="A", scan_id="1")])  # type: ignore[list-item]


def test_every_table_is_one_typed_row_and_every_field_has_a_duckdb_type():
    assert set(TABLES) == {row.TABLE for row in ROW_TYPES}  # type: ignore[attr-defined]
    for row in ROW_TYPES:
        assert [name for name, _ in TABLES[row.TABLE]] == [f.name for f in dataclasses.fields(row)]  # type: ignore[attr-defined]
    assert dict(TABLES["series"])["bad_files"] == "VARCHAR[]" and dict(TABLES["sessions"])["ingested_at"] == "TIMESTAMP"
    with pytest.raises(TypeError, match="no DuckDB type"):
        sql_type(dict)


def test_empty_store_has_typed_tables(tmp_path):
    got = query(tmp_path / "metrics.duckdb", tmp_path / "store",
                "SELECT (SELECT count(*) FROM sessions) s, (SELECT count(*) FROM series) r, "
                "(SELECT count(*) FROM check_results) c")
    assert got == [{"s": 0, "r": 0, "c": 0}]


def test_database_file_is_usable_by_plain_duckdb(tmp_path):
    store = MetricStore.under(tmp_path)
    store.replace(SessionRow, "A", [SessionRow(session="A", status="ingested")])
    store.query("SELECT 1")
    with duckdb.connect(str(store.db_path), read_only=True) as con:  # what a lab member does in a shell
        assert con.execute("SELECT session, status FROM sessions").fetchall() == [("A", "ingested")]


def test_check_rows_are_replaced_per_check(tmp_path):
    store = MetricStore.under(tmp_path)
    store.replace(CheckRow, "A", [CheckRow("A", "x", passed=True), CheckRow("A", "x", passed=True)], part="x")
    store.replace(CheckRow, "A", [CheckRow("A", "y", passed=False)], part="y")
    store.replace(CheckRow, "A", [CheckRow("A", "x", passed=False)], part="x")
    got = store.query("SELECT check_name, passed FROM check_results ORDER BY check_name")
    assert got == [{"check_name": "x", "passed": False}, {"check_name": "y", "passed": False}]


def test_unsafe_labels_get_hashed_file_names():
    assert session_file_name("SPN01_CMH_0001_01_01") == "SPN01_CMH_0001_01_01.parquet"
    unsafe = session_file_name("../../etc/passwd")
    assert "/" not in unsafe and unsafe.startswith("x-")


def test_moved_data_folder_gets_new_views(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    MetricStore.under(first).replace(SessionRow, "A", [SessionRow(session="A")])
    assert MetricStore.under(first).query("SELECT count(*) n FROM sessions") == [{"n": 1}]
    first.rename(second)
    assert MetricStore.under(second).query("SELECT count(*) n FROM sessions") == [{"n": 1}]
