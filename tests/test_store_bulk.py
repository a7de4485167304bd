"""Many sessions' rows written at once (store/bulk.py) give the same files, rows and types as
one MetricStore.replace per session; the review tables are split by scan_session."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from datman_flow.store import CheckRow, MetricStore, QcMetricRow, SeriesRow
from datman_flow.store.bulk import replace_sessions
from datman_flow.store.review_rows import RatingRow, SignOffRow

A, B = "SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01"


def test_the_files_read_back_as_replace_writes_them(tmp_path: Path):
    bulk, one_by_one = MetricStore.under(tmp_path / "bulk"), MetricStore.under(tmp_path / "loop")
    series = [SeriesRow(session=s, scan_id=str(n), series_number=str(n), tag=None if n == 9 else "T1",
                        bad_files=("a.dcm", "b'quote.dcm") if n == 2 else (), nifti_path=None, n_files=n)
              for s in (A, B) for n in (2, 9)]
    metrics = [QcMetricRow(session=s, series_number="2", tag="T1", metric=f"m{i}", value=i / 3, software_version="v",
                           computed_at=datetime(2025, 3, 4, 5, 6, 7, 891011)) for s in (A, B) for i in range(5)]
    ratings = [RatingRow(id=i, source_data_issue=i == 2, rating=i % 3, img_id=10 + i, session=7, notes="n", user="ann",
                         created=datetime(2025, 1, 1), scan_session=A if i < 3 else B) for i in range(1, 6)]
    for row_type, rows in ((SeriesRow, series), (QcMetricRow, metrics), (RatingRow, ratings)):
        assert replace_sessions(bulk.parquet_dir, row_type, rows) == 2
        key = "scan_session" if row_type is RatingRow else "session"
        for label in (A, B):
            one_by_one.replace(row_type, label, [r for r in rows if getattr(r, key) == label])
            assert bulk.read(row_type, label) == one_by_one.read(row_type, label) == \
                [r for r in rows if getattr(r, key) == label]
    names = sorted(p.relative_to(bulk.parquet_dir).as_posix() for p in bulk.parquet_dir.rglob(f"{A}*.parquet"))
    assert names == [f"qc_metrics/{A}.parquet", f"ratings/{A}.parquet", f"series/{A}.parquet"]
    assert not list(bulk.parquet_dir.glob(".bulk-*"))  # the work folder is gone


def test_parts_other_sessions_and_refusals(tmp_path: Path):
    store = MetricStore.under(tmp_path)
    store.replace(SignOffRow, B, [SignOffRow(id=1, scan_session=B, user="bob", comment="", created=datetime(2025, 1, 1))])
    checks = [CheckRow(session=A, check_name="expected_series", tag="T1", passed=True, expected=1, found=1)]
    assert replace_sessions(store.parquet_dir, CheckRow, checks, part="expected_series") == 1
    assert store.read(CheckRow, A, part="expected_series") == checks and store.read(CheckRow, A) == []
    assert replace_sessions(store.parquet_dir, SignOffRow, []) == 0 and len(store.read(SignOffRow, B)) == 1
    with pytest.raises(TypeError, match="check_results takes CheckRow rows, not SeriesRow"):
        replace_sessions(store.parquet_dir, CheckRow, [SeriesRow(session=A, scan_id="1")])
    with pytest.raises(ValueError, match="not finite"):
        replace_sessions(store.parquet_dir, QcMetricRow, [QcMetricRow(
            session=A, series_number="2", tag="T1", metric="snr", value=float("nan"), software_version="v",
            computed_at=datetime(2025, 1, 1))])
    assert store.read(QcMetricRow, A) == []
