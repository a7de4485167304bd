"""QC trends over time (the qc_trends asset): from a real metric store of synthetic rows (two
sites, phantoms, a scanner software upgrade, outliers) to figures on disk, what they draw, the
latest values, the numbers for Dagster's Plots tab and the inline images' budget."""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from datman_flow.config import load_config
from datman_flow.defs.resources import DatmanSettings
from datman_flow.defs.trend_assets import qc_trends
from datman_flow.layout import DataLayout
from datman_flow.pipeline.trend_data import TREND_METRICS
from datman_flow.pipeline.trend_summary import INLINE_BUDGET, NOTHING_YET, fit_inline, png_data_uri
from datman_flow.pipeline.trends import trends_step
from datman_flow.qc.kinds import QC_KINDS
from datman_flow.qc.trend_plot import small_png
from datman_flow.store import HeaderDiffRow, HeaderParameterRow, MetricStore, QcMetricRow, SessionRow
from datman_flow.store.rows import QcFlagRow
from datman_flow.store.trend_queries import metric_history

from xnat_helpers import one_site_study

START = date(2024, 1, 8)
UPGRADE_AT = 5  # CMH: sessions 0-4 on the old software, 5-7 on the new
T1_VALUES = {"snr_total": 12.0, "cnr": 3.0, "cjv": 0.45, "efc": 0.55, "wm2max": 0.7, "fwhm_avg": 3.5}
RST_VALUES = {"tsnr": 60.0, "fd_mean": 0.2, "dvars_std": 1.2, "aqi": 0.01, "gsr_x": 0.02, "fd_perc": 5.0}
NOW = datetime(2024, 6, 1)


def day(week: int) -> date:
    return START + timedelta(weeks=week)


def add_session(store: MetricStore, label: str, site: str, when: date, software: str | None,
                metrics: dict[str, dict[str, float]], phantom: bool = False,
                flags: tuple[tuple[str, str, str], ...] = (), upgrade_to: str | None = None,
                convention: str | None = "mriqc24") -> None:
    """A session with its parameters (SoftwareVersions when given), metrics per tag (series 2, 3,
    ... in tag order), flags (tag, metric, basis) and a software_upgrade finding when given."""
    store.replace(SessionRow, label, [SessionRow(session=label, study="SPN01", site=site, is_phantom=phantom,
                                                 scan_date=when.strftime("%Y%m%d"), status="ingested")])
    params = {"SoftwareVersions": software} if software else {"RepetitionTime": 2.3}
    numbers = {tag: str(n + 2) for n, tag in enumerate(metrics)}
    store.replace(HeaderParameterRow, label, [HeaderParameterRow(label, "SPN01", site, tag, numbers[tag],
                                                                 json.dumps(params)) for tag in metrics])
    store.replace(QcMetricRow, label, [QcMetricRow(label, numbers[tag], tag, name, value, "test", NOW, convention)
                                       for tag, values in metrics.items() for name, value in values.items()])
    store.replace(QcFlagRow, label, [QcFlagRow(label, numbers[tag], tag, metric, metrics[tag][metric], basis)
                                     for tag, metric, basis in flags])
    if upgrade_to:
        store.replace(HeaderDiffRow, label, [HeaderDiffRow(label, numbers["T1"], "T1", "SoftwareVersions", '"5.0"',
                                                           json.dumps(upgrade_to), None, "software_upgrade",
                                                           "gold/ZHH_T1.json", False, "warn")])


def lab_store(data: Path) -> MetricStore:
    """CMH: 8 weekly sessions (T1 and RST), a software upgrade at session 5, an outlier SNR at
    session 3 (site history) and a flag of another basis that is not an outlier; 3 phantoms (T1)
    across the upgrade. ZHH: 4 sessions (T1), whose software is known at first from the header
    parameters, then only from a software_upgrade finding; its latest CJV flagged (typical range)."""
    store = MetricStore.under(data)
    for i in range(8):
        t1 = {m: v * (1 + 0.01 * i) for m, v in T1_VALUES.items()}
        flags: tuple[tuple[str, str, str], ...] = ()
        if i == 3:
            t1["snr_total"] = 4.0
            flags = (("T1", "snr_total", "site history"), ("T1", "cnr", "reviewer"))
        software = "syngo MR E11" if i < UPGRADE_AT else "syngo MR XA30"
        add_session(store, f"SPN01_CMH_{i:04d}_01_01", "CMH", day(i), software,
                    {"T1": t1, "RST": dict(RST_VALUES)}, flags=flags)
    for n, week in enumerate((1, 4, 6)):
        add_session(store, f"SPN01_CMH_PHA_FBN{n:04d}", "CMH", day(week) + timedelta(days=1),
                    "syngo MR E11" if week < UPGRADE_AT else "syngo MR XA30", {"T1": dict(T1_VALUES)}, phantom=True)
    for i in range(4):
        t1 = dict(T1_VALUES, cjv=0.9 if i == 3 else 0.4)
        known = i < 2
        add_session(store, f"SPN01_ZHH_{i:04d}_01_01", "ZHH", day(i) + timedelta(days=2), "5.0" if known else None,
                    {"T1": t1}, flags=(("T1", "cjv", "typical range"),) if i == 3 else (),
                    upgrade_to=None if known else "5.1")
    return store


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The configuration (T1 anat, RST fmri) and a data folder with the lab's store, made once."""
    root = tmp_path_factory.mktemp("trends")
    configs = root / "configs"
    (configs / "studies").mkdir(parents=True)
    (configs / "tags.yml").write_text("T1: {qc: anat}\nRST: {qc: fmri}\nFMAP: {qc: ignore}\n")
    (configs / "studies" / "SPINS.yml").write_text(one_site_study("http://127.0.0.1:9"))
    lab_store(root / "data")
    return load_config(configs), root / "data"


@pytest.fixture(scope="module")
def trends(built):
    """The trends of the lab's store, computed once (under umask 027) for the tests that only read."""
    config, data = built
    mask = os.umask(0o027)
    try:
        return trends_step(config, DataLayout(data))
    finally:
        os.umask(mask)


@pytest.fixture
def lab(built, tmp_path):
    """A copy of the lab's store without figures, for a test that writes."""
    config, data = built
    shutil.copytree(data / "store", tmp_path / "data" / "store")
    return config, DataLayout(tmp_path / "data")


def by_name(trends):
    return {g.group.name: g for g in trends.groups}


def test_each_site_tag_and_phantom_has_its_figure_on_disk_with_the_umask_mode(trends, built):
    data = built[1]
    names = ["SPN01_CMH_RST", "SPN01_CMH_T1", "SPN01_CMH_T1_phantom", "SPN01_ZHH_T1"]
    assert list(by_name(trends)) == names
    for name in names:
        png = data / "trends" / f"{name}.png"
        assert by_name(trends)[name].png == png
        assert stat.S_IMODE(png.stat().st_mode) == 0o640
        with Image.open(png) as image:
            assert image.format == "PNG" and image.width > 1000
    assert trends.sessions == 15
    t1 = by_name(trends)["SPN01_CMH_T1"]
    assert t1.drawn.panels == TREND_METRICS["anat"] and t1.sessions == 8
    assert by_name(trends)["SPN01_CMH_T1_phantom"].sessions == 3  # phantoms apart from participants


def test_the_upgrade_is_a_labelled_line_in_every_panel_of_the_sites_figures(trends):
    t1 = by_name(trends)["SPN01_CMH_T1"].drawn
    assert t1.upgrade_lines == tuple((m, day(UPGRADE_AT)) for m in TREND_METRICS["anat"])
    assert set(t1.upgrade_labels) == {"syngo MR XA30"}
    rst = by_name(trends)["SPN01_CMH_RST"].drawn
    assert {x for _, x in rst.upgrade_lines} == {day(UPGRADE_AT)}  # the scanner's upgrade, whatever the tag
    phantom = by_name(trends)["SPN01_CMH_T1_phantom"].drawn
    assert {x for _, x in phantom.upgrade_lines} == {day(UPGRADE_AT)}  # the participants' date: the first session
    # ZHH: only a software_upgrade finding names the new version of its last two sessions
    zhh = by_name(trends)["SPN01_ZHH_T1"].drawn
    assert {x for _, x in zhh.upgrade_lines} == {day(2) + timedelta(days=2)}
    assert set(zhh.upgrade_labels) == {"5.1"}


def test_outliers_are_ringed_and_typical_ranges_shaded(trends):
    t1 = by_name(trends)["SPN01_CMH_T1"].drawn
    assert t1.outliers == (("snr_total", day(3), 4.0),)  # the 'reviewer' flag on cnr is no outlier
    bands = {metric: (low, high) for metric, low, high in t1.bands}
    assert bands["efc"] == (0.4, 0.7)
    assert bands["fwhm_avg"][1] == 5.0  # open below: shaded from the bottom of the panel up to 5
    # MRIQC's usual SNR, CNR and CJV describe 22.x values; the study measures under mriqc24 (the default)
    assert set(bands) == {"efc", "wm2max", "fwhm_avg"}
    zhh = by_name(trends)["SPN01_ZHH_T1"].drawn
    assert zhh.outliers == (("cjv", day(3) + timedelta(days=2), 0.9),)
    assert {m for m, _, _ in by_name(trends)["SPN01_CMH_RST"].drawn.bands} == {"tsnr", "fd_mean", "dvars_std"}


def test_the_latest_values_table_lists_each_groups_latest_session_with_flags_marked(trends):
    table = str(trends.metadata()["latest_values"])
    assert "**SPN01 · anat**" in table and "**SPN01 · fmri**" in table
    rows = {line.split(" | ")[0].strip("| ") + " " + line.split(" | ")[1]: line for line in table.splitlines()
            if line.startswith("| CMH") or line.startswith("| ZHH")}
    cmh = rows["CMH T1"].split(" | ")
    assert cmh[2:6] == ["SPN01_CMH_0007_01_01", str(day(7)), "2", "syngo MR XA30"]
    assert cmh[6] == f"{12.0 * 1.07:.3g}"
    assert rows["CMH T1 (phantom)"].split(" | ")[2] == "SPN01_CMH_PHA_FBN0002"
    zhh = rows["ZHH T1"].split(" | ")
    assert zhh[2] == "SPN01_ZHH_0003_01_01" and zhh[5] == "5.1"
    assert zhh[6 + TREND_METRICS["anat"].index("cjv")] == "**0.9** ⚠ (typical range)"
    assert rows["CMH RST"].split(" | ")[6] == "60"


def test_numbers_for_the_plots_tab_are_the_latest_values_of_three_key_metrics(trends):
    metadata = trends.metadata()
    numbers = {k: v for k, v in metadata.items() if k.count("/") == 3}
    assert numbers["SPN01/CMH/T1/snr_total"] == pytest.approx(12.0 * 1.07)
    assert numbers["SPN01/CMH/T1_phantom/snr_total"] == pytest.approx(12.0)
    assert numbers["SPN01/ZHH/T1/cjv"] == pytest.approx(0.9)
    assert numbers["SPN01/CMH/RST/tsnr"] == pytest.approx(60.0)
    assert len(numbers) == 4 * 3 and all(isinstance(v, float) for v in numbers.values())
    assert metadata["figure_count"] == 4 and metadata["sessions"] == 15


def test_the_inline_figures_stay_under_the_budget(trends, built):
    figures = str(trends.metadata()["figures"])
    assert figures.count("](data:image/png;base64,") == len(trends.inline) == 4
    assert trends.inline_chars() <= INLINE_BUDGET
    assert trends.metadata()["inline_kb"] == pytest.approx(trends.inline_chars() / 1000, abs=0.1)
    assert f"full size: `{built[1] / 'trends' / 'SPN01_ZHH_T1.png'}`" in figures


def test_over_budget_the_inline_figures_shrink_then_the_last_are_left_out(trends):
    groups = [g.group for g in trends.groups]
    with Image.open(trends.groups[0].png) as image:
        full = image.convert("RGB")
    one = len(png_data_uri(small_png(full, 0.48)))
    kept, notes = fit_inline(groups, lambda g, scale: small_png(full, scale), 0.48, 0.2, budget=3 * one)
    assert len(kept) == 4 and sum(len(u) for u in kept.values()) <= 3 * one
    assert notes and "of full size (instead of 48%)" in notes[0]
    kept, notes = fit_inline(groups, lambda g, scale: small_png(full, scale), 0.48, 0.2, budget=one)
    assert list(kept) == groups[:len(kept)] and len(kept) < 4
    assert "left out of the inline view" in notes[-1] and groups[-1].title in notes[-1]


def test_unchanged_figures_are_not_drawn_again_and_a_new_session_redraws_its_sites(lab):
    config, layout = lab
    first = trends_step(config, layout)
    assert all(g.drawn is not None for g in first.groups)
    again = trends_step(config, layout)
    assert all(g.drawn is None for g in again.groups) and again.metadata()["figures_redrawn"] == 0
    assert again.metadata()["latest_values"] == first.metadata()["latest_values"]
    add_session(layout.metric_store, "SPN01_ZHH_0004_01_01", "ZHH", day(5), "5.1", {"T1": dict(T1_VALUES)})
    after = trends_step(config, layout)
    assert [g.group.name for g in after.groups if g.drawn is not None] == ["SPN01_ZHH_T1"]
    (layout.root / "trends" / "SPN01_CMH_RST.png").write_bytes(b"truncated")
    assert [g.group.name for g in trends_step(config, layout).groups if g.drawn is not None] == ["SPN01_CMH_RST"]


def test_t1w_points_of_another_convention_are_left_out_with_a_note_bold_points_are_kept(lab):
    """A T1w's MRIQC 22 and 24 values differ by tens of percent: one panel would show a step that is
    no change in the images. Old rows (no convention recorded) were measured the MRIQC 22 way."""
    config, layout = lab
    add_session(layout.metric_store, "SPN01_ZHH_0009_01_01", "ZHH", day(7), "5.1",
                {"T1": dict(T1_VALUES, cnr=99.0)}, convention=None)
    add_session(layout.metric_store, "SPN01_CMH_0009_01_01", "CMH", day(7), "syngo MR XA30",
                {"T1": dict(T1_VALUES), "RST": dict(RST_VALUES, tsnr=77.0)}, convention="mriqc22")
    after = trends_step(config, layout)
    assert ("SPN01 ZHH T1: 1 session(s) measured under another MRIQC convention than the study's mriqc24 left "
            "out; re-materialize their qc_metrics to plot them") in after.notes
    assert "SPN01 CMH T1: 1 session(s) measured under another MRIQC convention" in " ".join(after.notes)
    latest = {g.group.name: g.latest for g in after.groups}
    assert all(v.session != "SPN01_ZHH_0009_01_01" for v in latest["SPN01_ZHH_T1"])
    assert [v.values["tsnr"] for v in latest["SPN01_CMH_RST"]] == [77.0]  # BOLD: the same either way


def test_an_empty_store_says_so(tmp_path, built):
    config, _ = built
    trends = trends_step(config, DataLayout(tmp_path / "empty"))
    metadata = trends.metadata()
    assert metadata["latest_values"] == NOTHING_YET and metadata["figures"] == NOTHING_YET
    assert metadata["figure_count"] == 0 and not (tmp_path / "empty" / "trends").exists()


def test_the_query_reads_software_from_parameters_else_from_an_upgrade_finding(built):
    store = MetricStore.under(built[1])
    points = metric_history(store, ["SPN01"], ["T1"], ["cjv"])
    zhh = {p.session: p.software for p in points if p.site == "ZHH"}
    assert zhh == {"SPN01_ZHH_0000_01_01": "5.0", "SPN01_ZHH_0001_01_01": "5.0", "SPN01_ZHH_0002_01_01": "5.1",
                   "SPN01_ZHH_0003_01_01": "5.1"}
    assert metric_history(store, ["OTHER"], ["T1"], ["cjv"]) == []


def test_the_trend_metrics_are_key_metrics_of_their_kind():
    for kind, metrics in TREND_METRICS.items():
        assert set(metrics) <= set(QC_KINDS[kind].key_metrics), kind  # type: ignore[index]
        assert 4 <= len(metrics) <= 6


def test_the_asset_materializes_with_its_metadata(lab):
    config, layout = lab
    settings = DatmanSettings(config_dir=str(config.config_dir), data_dir=str(layout.root))
    with dg.instance_for_test() as instance:
        result = dg.materialize([qc_trends], instance=instance, resources={"datman": settings})
        assert result.success
        metadata = result.asset_materializations_for_node("qc_trends")[0].metadata
    assert isinstance(metadata["latest_values"], dg.MarkdownMetadataValue)
    assert "data:image/png;base64," in metadata["figures"].value
    assert isinstance(metadata["SPN01/CMH/T1/snr_total"], dg.FloatMetadataValue)
    assert metadata["SPN01/CMH/T1/snr_total"].value == pytest.approx(12.0 * 1.07)
    assert metadata["figure_count"] == dg.IntMetadataValue(4)
    assert metadata["trends_dir"] == dg.PathMetadataValue(str(layout.root / "trends"))
    assert (layout.root / "trends" / "SPN01_CMH_T1_phantom.png").exists()
