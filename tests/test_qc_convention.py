"""The MRIQC convention a study's QC follows (`qc: {convention: mriqc24 | mriqc22}`): both give
finite metrics that differ as docs/metrics_anat.md says; the convention travels to the `_qc.json`
provenance and the store's `metric_convention`; a T1w's site history counts only rows of its own
convention (rows without one are mriqc22's) while BOLD's takes every row; the study file's block
loads and a bad value is refused with file:line. (Agreement with MRIQC's own code is
tests/test_mriqc_conformance.py.)"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import textwrap
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from datman_flow.config import ConfigError, check_config, load_config
from datman_flow.layout import DataLayout
from datman_flow.pipeline import persist
from datman_flow.pipeline.outliers import MeasuredSeries, outlier_step
from datman_flow.pipeline.qc import measure_series, metric_rows, series_rows
from datman_flow.pipeline.resolve import resolve_session
from datman_flow.qc import anat, settings
from datman_flow.qc.kinds import range_flags
from datman_flow.qc.measure import mriqc_record
from datman_flow.qc.result import QCResult
from datman_flow.qc.settings import QcSettings
from datman_flow.records import SeriesRecord
from datman_flow.samples import phantom, sessions
from datman_flow.store import HeaderParameterRow, QcMetricRow, QcSeriesRow, SessionRow, qc_queries
from datman_flow.store.review_queries import SiteMetricValues, measure_basis

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
LABEL, NEW = "SPN01_CMH_0001_01_01", "SPN01_CMH_0100_01_01"
SOFTWARE = "syngo MR E11"


@pytest.fixture(scope="module")
def small_t1(tmp_path_factory) -> Path:
    """The demo's 4 mm T1 phantom as a NIfTI (the quickest head the analysis accepts)."""
    grid = sessions.SMALL_T1_GRID
    path = tmp_path_factory.mktemp("convention") / f"{LABEL}_T1_02_t1.nii.gz"
    nib.save(nib.Nifti1Image(phantom.t1w_volume(grid, 5).astype(np.float32), np.diag([*grid.spacing, 1.0])), path)
    return path


@pytest.fixture(scope="module")
def both(small_t1) -> dict[str, dict[str, float]]:
    """The same inputs (one segmentation) measured under each convention; mriqc22's hat leaves
    the rotation mask out, as 22.x did."""
    inputs = anat.anat_inputs(small_t1, QcSettings("mriqc24"))
    old = dataclasses.replace(inputs, hat=anat.hat_mask(inputs.head, inputs.seg.brain, inputs.rot))
    return {"mriqc24": anat.iqms(inputs, "mriqc24"), "mriqc22": anat.iqms(old, "mriqc22"),
            "sums": {c: float(inputs.seg.pvms[k].sum(dtype=np.float64)) for k, c in enumerate(("csf", "gm", "wm"))}}


def test_both_conventions_give_finite_metrics_that_differ_as_documented(both):
    m24, m22 = both["mriqc24"], both["mriqc22"]
    assert set(m24) == set(m22) and "qi_2" in m24
    assert all(math.isfinite(v) for v in (*m24.values(), *m22.values()))
    # the same: what does not read the summary statistics or the air
    for name in ("fwhm_avg", "icvs_csf", "icvs_gm", "icvs_wm", "rpve_csf", "inu_range", "inu_med", "size_x"):
        assert m24[name] == m22[name], name
    assert m24["efc"] == round(m22["efc"], 4) and m24["fber"] == round(m22["fber"], 4)
    # 24: n = sum of the partial-volume map, so mixed voxels count and spread the tissue values
    for c in ("csf", "gm", "wm"):
        assert m24[f"summary_{c}_n"] == pytest.approx(both["sums"][c]) and m24[f"summary_{c}_n"] > m22[f"summary_{c}_n"]
    assert m24["summary_gm_stdv"] > m22["summary_gm_stdv"] and m24["summary_wm_stdv"] > m22["summary_wm_stdv"]
    assert m24["snr_total"] < m22["snr_total"] and m24["cnr"] < m22["cnr"] and m24["cjv"] > m22["cjv"]
    assert m24["summary_wm_median"] == round(m24["summary_wm_median"])  # weighted quantiles of rounded data


def test_qc_json_and_store_rows_carry_the_convention(small_t1, tmp_path):
    nifti = tmp_path / small_t1.name
    shutil.copy(small_t1, nifti)
    record = SeriesRecord(session=LABEL, scan_id="2", series_number="2", description="t1", download_status="complete",
                          tag="T1", nifti_path=str(nifti), conversion_status="converted")
    old = measure_series(record, "anat", QcSettings("mriqc22"))
    assert old.status == "measured", old.message
    written = json.loads(Path(old.json_path).read_text())
    assert written["provenance"]["settings"] == {"implementation": "numpy/scipy/nibabel (no FSL, ANTs or AFNI)",
                                                 "convention": "mriqc22", "anat_engine": "builtin"}
    layout = DataLayout(tmp_path / "data")  # what the QC step records (pipeline/qc.py: qc_step)
    persist.record_rows(layout, QcMetricRow, LABEL, metric_rows(LABEL, [old]))
    persist.record_rows(layout, QcSeriesRow, LABEL, series_rows(LABEL, [old]))
    assert layout.metric_store.query("SELECT DISTINCT metric_convention AS c FROM qc_metrics") == [{"c": "mriqc22"}]
    assert layout.metric_store.query("SELECT metric_convention AS c, anat_engine AS e FROM qc_series") == [
        {"c": "mriqc22", "e": "builtin"}]
    # the default: mriqc24
    assert mriqc_record(QCResult("anat", {"cnr": 2.0}, convention="mriqc24"), nifti)["provenance"]["settings"][
        "convention"] == "mriqc24"
    assert settings.DEFAULT_QC.convention == "mriqc24"


def test_typical_ranges_of_snr_cnr_and_cjv_hold_for_mriqc22_values_only(tmp_path):
    """MRIQC's usual SNR/CNR/CJV describe 22.x's statistics; 24's weighted ones sit lower (SNR,
    CNR) and higher (CJV), so under mriqc24 the site history judges them, not those ranges."""
    low = {"snr_total": 5.0, "cnr": 1.0, "cjv": 0.9, "efc": 0.9}
    assert [f.metric for f in range_flags("anat", low, "mriqc22")] == ["snr_total", "cnr", "cjv", "efc"]
    assert [f.metric for f in range_flags("anat", low, "mriqc24")] == ["efc"]
    assert [f.metric for f in range_flags("anat", low)] == ["snr_total", "cnr", "cjv", "efc"]  # unknown: applied
    nifti = tmp_path / "t1.nii.gz"
    nifti.write_bytes(b"only its md5 is read")
    flags = mriqc_record(QCResult("anat", low, convention="mriqc24"), nifti)["datman_flags"]
    assert [f["metric"] for f in flags] == ["efc"]


# ---- the site history ---------------------------------------------------------------------------

def add_session(layout: DataLayout, label: str, scan_date: str, tag: str, metrics: dict[str, float],
                convention: str | None, engine: str | None = None) -> None:
    store = layout.metric_store
    store.replace(SessionRow, label, [SessionRow(session=label, study="SPN01", site="CMH", is_phantom=False,
                                                 scan_date=scan_date, insert_date="2024-01-01 08:00:00.000",
                                                 status="ingested")])
    number = {"T1": "2", "RST": "3"}[tag]
    store.replace(HeaderParameterRow, label, [HeaderParameterRow(
        session=label, study="SPN01", site="CMH", tag=tag, series_number=number,
        parameters=json.dumps({"SoftwareVersions": SOFTWARE}))])
    store.replace(QcMetricRow, label, [QcMetricRow(session=label, series_number=number, tag=tag, metric=name, value=value,
                                                   software_version="t", computed_at=datetime(2024, 1, 1),
                                                   metric_convention=convention, anat_engine=engine)
                                       for name, value in metrics.items()])


@pytest.fixture
def lab(tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    return configs, DataLayout(tmp_path / "data")


def with_convention(configs: Path, convention: str, engine: str = "builtin") -> None:
    study = configs / "studies" / "SPINS.yml"
    block = f"qc: {{convention: {convention}, anat_engine: {engine}}}\n"
    study.write_text(study.read_text().replace("sites:\n", block + "sites:\n", 1))


def history(layout: DataLayout, tag: str, kind: str, metrics: dict[str, float], configs: Path):
    target = resolve_session(load_config(configs, env={}), NEW)
    add_session(layout, NEW, "20240331", tag, metrics, target.study.qc.convention)
    [found] = outlier_step(target, layout, [MeasuredSeries({"T1": "2", "RST": "3"}[tag], tag, kind, metrics)])
    return found


def test_a_t1w_history_counts_only_rows_of_its_own_convention(lab):
    configs, layout = lab
    for i in range(10):  # old rows without a convention: measured as mriqc22 (snr_total about 12)
        add_session(layout, f"SPN01_CMH_{i:04d}_01_01", f"202403{1 + i:02d}", "T1", {"snr_total": 12.0 + 0.1 * i}, None)
    for i in range(10, 13):  # three under mriqc24 (snr_total about 7)
        add_session(layout, f"SPN01_CMH_{i:04d}_01_01", f"202403{1 + i:02d}", "T1", {"snr_total": 7.0 + 0.1 * i}, "mriqc24")
    new = history(layout, "T1", "anat", {"snr_total": 7.2}, configs)  # the default: mriqc24
    assert new.n_history == 3 and not new.compared  # only the three mriqc24 sessions count: too few
    assert new.range_flags == ()  # and no typical SNR range under mriqc24
    with_convention(configs, "mriqc22")
    old = history(layout, "T1", "anat", {"snr_total": 7.2}, configs)
    assert old.n_history == 10 and old.compared  # the rows without a convention are mriqc22's
    assert [f.metric for f in old.site_flags] == ["snr_total"]  # 7.2 is far below 22.x's history


def test_a_t1w_history_counts_only_rows_of_its_own_engine(lab):
    """Atropos' classes and the built-in ones give CJV and CNR tens of percent apart: a study that
    changes its engine starts its T1w history again (rows without an engine are the built-in's)."""
    configs, layout = lab
    for i in range(10):  # the built-in engine, half of them recorded before the engine column existed
        add_session(layout, f"SPN01_CMH_{i:04d}_01_01", f"202403{1 + i:02d}", "T1", {"cjv": 0.55 + 0.001 * i},
                    "mriqc24", None if i % 2 else "builtin")
    configs_builtin = configs.parent / "builtin"
    shutil.copytree(configs, configs_builtin)
    with_convention(configs, "mriqc24", "ants")
    ants = history(layout, "T1", "anat", {"cjv": 0.40}, configs)
    assert ants.n_history == 0 and not ants.compared
    with_convention(configs_builtin, "mriqc24", "builtin")
    builtin = history(layout, "T1", "anat", {"cjv": 0.40}, configs_builtin)
    assert builtin.n_history == 10 and builtin.compared


def test_a_bold_history_ignores_the_convention(lab):
    configs, layout = lab
    for i in range(10):
        convention = (None, "mriqc22", "mriqc24")[i % 3]
        add_session(layout, f"SPN01_CMH_{i:04d}_01_01", f"202403{1 + i:02d}", "RST", {"tsnr": 55.0 + i}, convention)
    found = history(layout, "RST", "fmri", {"tsnr": 14.0}, configs)
    assert found.n_history == 10 and found.compared and [f.metric for f in found.site_flags] == ["tsnr"]


def test_the_review_pages_site_medians_compare_a_t1w_only_with_its_own_convention_and_engine(lab):
    """The session page's 'site median' beside a T1w metric: only sessions measured the same way
    (old rows count as mriqc22 / builtin); a BOLD median takes every session."""
    _, layout = lab
    store = layout.metric_store
    kinds = {"T1": "anat", "RST": "fmri"}
    for i, (convention, engine, cjv) in enumerate([(None, None, 0.30), (None, None, 0.32), ("mriqc24", "builtin", 0.55),
                                                   ("mriqc24", "builtin", 0.57), ("mriqc24", "ants", 0.50)]):
        label = f"SPN01_CMH_{i:04d}_01_01"
        add_session(layout, label, f"202403{1 + i:02d}", "T1", {"cjv": cjv}, convention, engine)
        store.replace(QcMetricRow, label, store.read(QcMetricRow, label) + [
            QcMetricRow(label, "3", "RST", "tsnr", 50.0 + i, "t", datetime(2024, 1, 1), convention)])
        store.replace(QcSeriesRow, label, [QcSeriesRow(label, number, tag, kinds[tag], "measured",
                                                       metric_convention=convention,
                                                       anat_engine=engine if tag == "T1" else None)
                                           for tag, number in (("T1", "2"), ("RST", "3"))])
    values = SiteMetricValues(store)
    values.refresh(wait=True)

    def median(tag: str, metric: str, basis: str):
        found = values.medians("SPN01", "CMH", False, tag, [metric], "SPN01_CMH_9999_01_01", basis)[metric]
        return found.median, found.sessions

    assert median("T1", "cjv", measure_basis("anat", "mriqc24", "builtin")) == (0.56, 2)
    assert median("T1", "cjv", measure_basis("anat", None, None)) == (0.31, 2)
    assert median("T1", "cjv", measure_basis("anat", "mriqc24", "ants")) == (0.50, 1)
    assert median("RST", "tsnr", measure_basis("fmri", "mriqc24", None)) == (52.0, 5)


def test_legacy_convention_is_the_same_in_the_store_and_the_settings():
    assert qc_queries.LEGACY_CONVENTION == settings.LEGACY_CONVENTION == "mriqc22"


# ---- the study file ------------------------------------------------------------------------------

STUDY = """\
study: SPN01
xnat: {{url: 'http://xnat.example.org/', project: SPINS}}
qc:
  convention: {convention}
sites:
  CMH: {{xnat_project: SPINS_CMH}}
"""


def study_root(tmp_path: Path, convention: str) -> Path:
    root = tmp_path / "configs"
    (root / "studies").mkdir(parents=True)
    (root / "tags.yml").write_text("T1: {qc: anat}\n")
    (root / "studies" / "SPINS.yml").write_text(textwrap.dedent(STUDY.format(convention=convention)))
    return root


def test_a_study_chooses_mriqc22_in_its_qc_block(tmp_path):
    config = load_config(study_root(tmp_path, "mriqc22"), env={})
    assert config.studies["SPN01"].qc == QcSettings(convention="mriqc22", anat_engine="builtin")


def test_an_unknown_convention_is_refused_with_file_and_line(tmp_path):
    root = study_root(tmp_path, "mriqc23")
    [issue] = [str(i) for i in check_config(root, env={})]
    assert issue.startswith(f"{root}/studies/SPINS.yml:4: qc.convention: ")
    assert "mriqc24" in issue and "mriqc22" in issue
    with pytest.raises(ConfigError):
        load_config(root, env={})


def test_the_normalisation_is_a_study_setting(lab):
    configs, _ = lab
    assert load_config(configs, env={}).studies["SPN01"].qc.normalisation == "affine"  # the default
    study = configs / "studies" / "SPINS.yml"
    study.write_text(study.read_text().replace("sites:\n", "qc: {normalisation: syn}\nsites:\n", 1))
    assert load_config(configs, env={}).studies["SPN01"].qc.normalisation == "syn"
    study.write_text(study.read_text().replace("qc: {normalisation: syn}", "qc: {normalisation: nonlinear}"))
    [issue] = check_config(configs, env={})
    assert issue.message == "qc.normalisation: got 'nonlinear'; expected 'affine' or 'syn'"
