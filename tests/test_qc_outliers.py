"""QC flags: robust z against the site's own history (phantoms apart, other scanner software
apart, never the session itself, only earlier sessions), the typical-range fallback, and what
is recorded in a real metric store."""

from __future__ import annotations

import json
import math
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from datman_flow.config import load_config
from datman_flow.layout import DataLayout
from datman_flow.pipeline.outliers import (
    MAD_SCALE,
    MeasuredSeries,
    bad_sides,
    is_outlier,
    outlier_step,
    robust_stats,
    software_of,
)
from datman_flow.pipeline.resolve import resolve_session
from datman_flow.qc.measure import mriqc_record
from datman_flow.qc.result import QCResult
from datman_flow.store import HeaderParameterRow, MetricStore, QcMetricRow, SessionRow
from datman_flow.store.qc_queries import HistoryKey, metric_history

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
E11, E11C = "syngo MR E11", "syngo MR E11C"
NEW = "SPN01_CMH_0100_01_01"


def add_session(store: MetricStore, label: str, scan_date: str, series: dict[tuple[str, str], dict[str, float]],
                software: str = E11, insert_date: str = "2024-01-01 08:00:00.000", phantom: bool = False,
                study: str = "SPN01", site: str = "CMH") -> None:
    """One recorded session: its sessions row, the header check's parameters and QC metrics of
    each (series number, tag)."""
    store.replace(SessionRow, label, [SessionRow(session=label, study=study, site=site, is_phantom=phantom,
                                                 scan_date=scan_date, insert_date=insert_date, status="ingested")])
    store.replace(HeaderParameterRow, label, [
        HeaderParameterRow(session=label, study=study, site=site, tag=tag, series_number=number,
                           parameters=json.dumps({"SoftwareVersions": software, "EchoTime": 0.03}))
        for number, tag in series])
    store.replace(QcMetricRow, label, [
        QcMetricRow(session=label, series_number=number, tag=tag, metric=metric, value=value, software_version="t",
                    computed_at=datetime(2024, 1, 1))
        for (number, tag), metrics in series.items() for metric, value in metrics.items()])


def history_of(n: int, start: int = 0, **metrics: float) -> list[tuple[str, str, dict]]:
    """n earlier participant sessions (March 2024), each metric spread a little around its value."""
    out = []
    for i in range(start, start + n):
        spread = 1.0 + 0.01 * ((i % 5) - 2)  # 0.98 .. 1.02
        out.append((f"SPN01_CMH_{i:04d}_01_01", f"202403{1 + i % 28:02d}",
                    {("3", "RST"): {name: value * spread for name, value in metrics.items()}}))
    return out


# ---- robust statistics -------------------------------------------------------------------------

def test_robust_z_from_median_and_mad():
    stats = robust_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (stats.median, stats.mad, stats.n) == (3.0, 1.0, 5)  # the 100 does not move them
    assert stats.z(10.0) == pytest.approx(7.0 / MAD_SCALE)
    low, high = stats.bounds(3.5)
    assert (low, high) == pytest.approx((3.0 - 3.5 * MAD_SCALE, 3.0 + 3.5 * MAD_SCALE))
    with pytest.raises(ValueError):
        robust_stats([])


def test_mad_zero_flags_only_values_that_differ_and_never_divides_by_zero():
    stats = robust_stats([64.0] * 9 + [65.0])  # more than half equal: MAD 0
    assert stats.mad == 0.0 and stats.bounds(3.5) == (64.0, 64.0)
    assert stats.z(64.0) == 0.0 and stats.z(64.0 * (1 + 1e-12)) == 0.0  # float noise is not a difference
    assert stats.z(64.5) == math.inf and stats.z(63.0) == -math.inf
    zero = robust_stats([0.0] * 8)  # e.g. dropout_slices: none in any earlier session
    assert zero.z(0.0) == 0.0 and zero.z(1.0) == math.inf


def test_bad_side_follows_the_metric_direction():
    assert bad_sides("fmri", "tsnr") == (True, False)  # a higher tSNR is no problem
    assert bad_sides("fmri", "fd_mean") == (False, True)  # more motion is
    assert bad_sides("fmri", "dvars_std") == (True, True)  # "in range"
    assert bad_sides("fmri", "gsr_x") == (True, True)  # no usual range: both ways
    assert bad_sides("dwi", "n_directions") == (True, True)
    assert is_outlier(-4.0, 3.5, True, False) and not is_outlier(4.0, 3.5, True, False)
    assert not is_outlier(-3.4, 3.5, True, True) and is_outlier(math.inf, 3.5, False, True)


def test_software_read_as_the_store_query_reads_it():
    assert software_of(json.dumps({"SoftwareVersions": E11})) == E11
    assert software_of(json.dumps({"SoftwareVersions": ["a", "b"]})) == '["a","b"]'
    assert software_of("{}") == "" and software_of("not json") == "" and software_of("[1]") == ""


# ---- the store query ------------------------------------------------------------------------------

def test_history_keeps_only_earlier_sessions_of_the_same_site_tag_software_and_kind(tmp_path):
    store = MetricStore.under(tmp_path)
    rst = {("3", "RST"): {"tsnr": 50.0, "fd_mean": 0.2}}
    add_session(store, "SPN01_CMH_0001_01_01", "20240301", rst)
    add_session(store, "SPN01_CMH_0002_01_01", "20240302", {("3", "RST"): {"tsnr": 52.0, "fd_mean": math.nan}})
    add_session(store, "SPN01_CMH_0003_01_01", "20240310", rst,  # the same day, inserted earlier
                insert_date="2024-03-10 07:00:00.000")
    add_session(store, "SPN01_CMH_0004_01_01", "20240310", rst, insert_date="2024-03-10 12:00:00.000")  # later
    add_session(store, "SPN01_CMH_0005_01_01", "20240401", rst)  # scanned after
    add_session(store, "SPN01_CMH_0006_01_01", "20240303", rst, software=E11C)  # other software
    add_session(store, "SPN01_CMH_PHA_FBN0001", "20240303", rst, phantom=True)  # a phantom
    add_session(store, "SPN01_ZHH_0007_01_01", "20240303", rst, site="ZHH")  # other site
    add_session(store, "SPN02_CMH_0008_01_01", "20240303", rst, study="SPN02")  # other study
    add_session(store, "SPN01_CMH_0009_01_01", "20240303", {("4", "T1"): {"tsnr": 1.0}})  # other tag
    add_session(store, NEW, "20240310", {("3", "RST"): {"tsnr": 1.0}}, insert_date="2024-03-10 09:00:00.000")

    key = HistoryKey("RST", E11, ("tsnr", "fd_mean"))

    def history(**kw):
        args = {"phantom": False, "other_than": NEW, "scan_date": "20240310",
                "insert_date": "2024-03-10 09:00:00.000"} | kw
        return metric_history(store, "SPN01", "CMH", [key], **args)[key]

    found = history()
    assert sorted(found.values["tsnr"]) == [50.0, 50.0, 52.0] and found.values["fd_mean"] == (0.2, 0.2)
    assert found.metric_sessions == {"tsnr": 3, "fd_mean": 2}  # 0002's NaN fd_mean is left out
    assert found.sessions == 3  # 0001, 0002 and 0003 (the same day, inserted earlier)
    # dates unknown: every other session of the site (0001 to 0005), never the session itself
    assert history(scan_date="", insert_date="").sessions == 5
    phantoms = history(phantom=True, other_than="SPN01_CMH_PHA_FBN0002", scan_date="20240401")
    assert phantoms.sessions == 1 and phantoms.values == {"tsnr": (50.0,), "fd_mean": (0.2,)}  # only the phantom
    other, none = HistoryKey("RST", E11C, ("tsnr",)), HistoryKey("RST", "syngo MR XA60", ("tsnr",))
    both = metric_history(store, "SPN01", "CMH", [key, other, none], phantom=False, other_than=NEW)
    assert both[other].values == {"tsnr": (50.0,)} and both[other].sessions == 1  # 0006, other software
    assert both[none].values == {} and both[none].sessions == 0
    assert both[key].sessions == 5
    assert metric_history(store, "SPN01", "CMH", [], phantom=False, other_than=NEW) == {}


# ---- the step, recorded in the store ------------------------------------------------------------

@pytest.fixture
def lab(tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    return configs, DataLayout(tmp_path / "data")


def run_step(configs: Path, layout: DataLayout, label: str, metrics: dict[str, float], tag: str = "RST",
             kind: str = "fmri", number: str = "3", scan_date: str = "20240331"):
    add_session(layout.metric_store, label, scan_date, {(number, tag): metrics})
    target = resolve_session(load_config(configs, env={}), label)
    return outlier_step(target, layout, [MeasuredSeries(number, tag, kind, metrics)])  # type: ignore[arg-type]


def stored(layout: DataLayout, sql: str) -> list[dict]:
    return layout.metric_store.query(sql)


def test_an_outlier_against_the_site_history_fails_the_check_and_is_recorded(lab):
    configs, layout = lab
    for label, date, series in history_of(12, tsnr=55.0, fd_mean=0.2, dvars_std=1.2, gsr_x=0.01):
        add_session(layout.metric_store, label, date, series)
    [series] = run_step(configs, layout, NEW, {"tsnr": 14.2, "fd_mean": 0.05, "dvars_std": 1.2, "gsr_x": 0.0})
    assert series.compared and series.n_history == 12 and series.software == E11
    # tsnr far below (bad side); fd_mean far below (a low FD is no problem); gsr_x (no range: both ways)
    assert sorted(f.metric for f in series.site_flags) == ["gsr_x", "tsnr"]
    tsnr = next(f for f in series.site_flags if f.metric == "tsnr")
    assert tsnr.median == pytest.approx(54.725) and tsnr.z < -3.5 and tsnr.low < 54.725 < tsnr.high
    assert [f.metric for f in series.range_flags] == ["tsnr"]  # also below the typical 20 - 120
    assert series.passed is False
    flags = stored(layout, "SELECT metric, basis, n_history, software, z FROM qc_flags ORDER BY basis, metric")
    assert [(f["metric"], f["basis"], f["n_history"], f["software"]) for f in flags] == [
        ("gsr_x", "site history", 12, E11), ("tsnr", "site history", 12, E11), ("tsnr", "typical range", 12, E11)]
    assert flags[2]["z"] is None
    [check] = stored(layout, "SELECT * FROM check_results WHERE check_name = 'qc_outliers'")
    assert check["passed"] is False and check["tag"] == "RST" and check["series"] == ["3"] and check["found"] == 2
    assert check["detail"] == ("tsnr 14.2: site median 54.7 (n=12), z -33.1; "
                               "gsr_x 0: site median 0.00995 (n=12), z -44.7")
    assert stored(layout, f"SELECT qc_flagged FROM session_summary WHERE session = '{NEW}'") == [{"qc_flagged": 3}]


def test_good_values_pass_and_a_rerun_replaces_the_rows(lab):
    configs, layout = lab
    for label, date, series in history_of(10, tsnr=55.0, fd_mean=0.2):
        add_session(layout.metric_store, label, date, series)
    run_step(configs, layout, NEW, {"tsnr": 14.2, "fd_mean": 0.2})
    [series] = run_step(configs, layout, NEW, {"tsnr": 300.0, "fd_mean": 0.2})  # far above: better, not bad
    assert series.flags == () and series.passed is True and series.detail().startswith("ok: key metrics within")
    assert stored(layout, "SELECT count(*) AS n FROM qc_flags") == [{"n": 0}]
    assert stored(layout, "SELECT passed FROM check_results WHERE check_name = 'qc_outliers'") == [{"passed": True}]


def test_short_history_falls_back_on_the_typical_ranges(lab):
    configs, layout = lab
    for label, date, series in history_of(3, tsnr=55.0, fd_mean=0.2):
        add_session(layout.metric_store, label, date, series)
    [series] = run_step(configs, layout, NEW, {"tsnr": 14.2, "fd_mean": 0.2})
    assert not series.compared and series.site_flags == () and series.passed is False
    assert series.detail() == "tsnr 14.2: outside typical range 20 - 120 (site history n=3 < 8)"
    [ok] = run_step(configs, layout, "SPN01_CMH_0101_01_01", {"tsnr": 60.0, "fd_mean": 0.2}, scan_date="20240401")
    assert ok.passed is True and ok.detail() == "ok: within typical ranges; site history n=4 < 8 sessions"
    # diffusion has no typical ranges: with a short history nothing could be evaluated (NULL)
    [dwi] = run_step(configs, layout, "SPN01_CMH_0102_01_01", {"snr_b0": 3.0, "n_b0": 2.0}, tag="DTI60",
                     kind="dwi", number="4")
    assert dwi.passed is None and dwi.detail().startswith("not evaluated: site history n=0 < 8")
    rows = stored(layout, "SELECT session, passed FROM check_results WHERE check_name = 'qc_outliers' ORDER BY session")
    assert [r["passed"] for r in rows] == [False, True, None]


def test_min_history_and_z_from_the_study_yaml(lab):
    configs, layout = lab
    study = configs / "studies" / "SPINS.yml"
    study.write_text(study.read_text().replace("sites:\n", "qc_outliers: {min_history: 3, z: 50}\nsites:\n", 1))
    for label, date, series in history_of(3, tsnr=55.0, fd_mean=0.2):
        add_session(layout.metric_store, label, date, series)
    [series] = run_step(configs, layout, NEW, {"tsnr": 14.2, "fd_mean": 0.2})
    assert series.compared and series.min_history == 3
    assert series.site_flags == ()  # z about -20: beyond 3.5, not beyond 50
    assert series.passed is True and [f.metric for f in series.range_flags] == ["tsnr"]  # recorded anyway


def test_the_session_itself_and_later_sessions_are_never_its_history(lab):
    configs, layout = lab
    for label, date, series in history_of(9, tsnr=55.0):
        add_session(layout.metric_store, label, date, series)
    # a re-run of an old session: only the sessions scanned before it count
    [series] = run_step(configs, layout, "SPN01_CMH_0004_01_01", {"tsnr": 55.0}, scan_date="20240305")
    assert series.n_history == 4 and not series.compared


def test_mriqc_json_carries_the_typical_range_flags(tmp_path):
    nifti = tmp_path / "x_bold.nii.gz"
    nifti.write_bytes(b"not really a NIfTI: only its md5 is read")
    record = mriqc_record(QCResult("fmri", {"tsnr": 14.2, "fd_mean": 0.1, "dvars_std": 2.5}), nifti)
    assert record["datman_flags"] == [
        {"metric": "tsnr", "value": 14.2, "basis": "typical range", "low": 20.0, "high": 120.0, "better": "higher"},
        {"metric": "dvars_std", "value": 2.5, "basis": "typical range", "low": 0.8, "high": 2.0, "better": "in range"}]
    assert mriqc_record(QCResult("dwi", {"snr_b0": 1.0}), nifti)["datman_flags"] == []


def test_history_counts_sessions_not_series_and_reads_files_of_an_older_schema(lab):
    import duckdb

    configs, layout = lab
    store = layout.metric_store
    for i in range(8):  # two RST series per session; aqi only in four of them
        aqi = {"aqi": 0.01} if i < 4 else {}
        add_session(store, f"SPN01_CMH_{i:04d}_01_01", f"202403{i + 1:02d}",
                    {("3", "RST"): {"tsnr": 55.0 + i, **aqi}, ("5", "RST"): {"tsnr": 56.0 + i, **aqi}})
    # a sessions file of an older schema (no insert_date, no health): the history query falls back
    # on the views (union_by_name) and reads it all the same
    old = "SPN01_CMH_0050_01_01"
    add_session(store, old, "20240310", {("3", "RST"): {"tsnr": 57.0}})
    target = store.parquet_dir / "sessions" / f"{old}.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT '{old}' AS session, 'SPN01' AS study, 'CMH' AS site, false AS is_phantom, "
                    f"'20240310' AS scan_date, 'ingested' AS status) TO '{target}' (FORMAT parquet)")
    [series] = run_step(configs, layout, NEW, {"tsnr": 56.0, "aqi": 5.0})
    assert series.n_history == 9 and series.compared
    assert series.site_flags == ()  # aqi has 4 earlier sessions: not compared, however far off
    assert stored(layout, f"SELECT health FROM sessions WHERE session = '{old}'") == [{"health": None}]
    assert store.quarantined() == []  # a file of an older schema is not an unreadable one


def test_a_phantom_with_a_short_history_is_not_evaluated_against_brain_ranges():
    from datman_flow.config import QcOutliers
    from datman_flow.pipeline.outliers import MeasuredSeries, series_outliers
    from datman_flow.store.qc_queries import MetricHistory

    sphere = MeasuredSeries("2", "T1", "anat", {"snr_total": float("nan"), "wm2max": 0.95, "icvs_gm": 0.0})
    short = MetricHistory({}, {}, 2)
    as_phantom = series_outliers("SPN01_CMH_PHA_FBN0001", sphere, short, "E11", QcOutliers(), phantom=True)
    assert as_phantom.passed is None and as_phantom.flags == ()
    assert "no typical ranges for phantoms" in as_phantom.detail()
    as_participant = series_outliers("SPN01_CMH_0001_01_01", sphere, short, "E11", QcOutliers())
    assert as_participant.passed is False and {f.metric for f in as_participant.flags} >= {"wm2max", "snr_total"}
