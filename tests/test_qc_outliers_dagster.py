"""The qc_outliers check through the Dagster job: a sample phantom pulled from the emulator,
measured, and compared with a history of earlier phantom sessions already in the store."""

from __future__ import annotations

import json
import re

import dagster as dg
import pytest

from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings, xnat_from_env
from datman_flow.defs.session_assets import SESSION_ASSETS
from datman_flow.store import HeaderParameterRow, MetricStore, QcMetricRow, SessionRow
from datman_flow.xnat.emulator import XnatEmulator

from pipeline_helpers import CONFIGS, PHANTOM, copy_session, sample_template

SOFTWARE = "syngo MR E11"  # the sample phantom's SoftwareVersions


@pytest.fixture
def xnat(tmp_path_factory, tmp_path, monkeypatch):
    template = sample_template(tmp_path_factory.mktemp("samples"), [PHANTOM])
    copy_session(template, tmp_path / "xnat", "SPINS_CMH", PHANTOM)
    with XnatEmulator(tmp_path / "xnat", port=0, user="u", password="p") as emulator:
        for key, value in {"DATMAN_XNAT_URL": emulator.url, "XNAT_USER": "u", "XNAT_PASS": "p"}.items():
            monkeypatch.setenv(key, value)
        yield emulator


def earlier_phantoms(store: MetricStore, n: int) -> None:
    """n phantom sessions scanned before the sample's (2024-03-12), whose T1 had a CNR of about
    1000 and a CJV of about 0.001: the sample's T1 (a gel sphere: CNR about 2-3 and CJV 0.3-0.7 between
    classes drawn in one tissue, whatever the convention) is far worse on both."""
    for i in range(n):
        label = f"SPN01_CMH_PHA_FBN{9000 + i}"
        store.replace(SessionRow, label, [SessionRow(session=label, study="SPN01", site="CMH", is_phantom=True,
                                                     scan_date=f"202402{10 + i:02d}", status="ingested")])
        store.replace(HeaderParameterRow, label, [HeaderParameterRow(
            session=label, study="SPN01", site="CMH", tag="T1", series_number="2",
            parameters=json.dumps({"SoftwareVersions": SOFTWARE}))])
        store.replace(QcMetricRow, label, [
            QcMetricRow(session=label, series_number="2", tag="T1", metric=metric, value=value * (1 + 0.001 * i),
                        software_version="t", computed_at=None, metric_convention="mriqc24")
            for metric, value in (("cnr", 1e3), ("cjv", 0.001))])


def test_qc_outliers_check_fails_with_the_outliers_and_the_flags_are_recorded(xnat, tmp_path):
    data = tmp_path / "data"
    store = MetricStore.under(data)
    earlier_phantoms(store, 8)
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(SESSIONS.name, [PHANTOM])
        result = dg.materialize(SESSION_ASSETS, partition_key=PHANTOM, instance=instance, raise_on_error=False,
                                resources={"datman": DatmanSettings(config_dir=str(CONFIGS), data_dir=str(data)),
                                           "xnat": xnat_from_env()})
    assert result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "qc_outliers"]
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    found = re.match(rf"{PHANTOM}: 2 outliers: series 2 T1 cnr ([0-9.]+): site median 1e\+03 \(n=8\), z -.*; "
                     r"series 2 T1 cjv ([0-9.]+): site median 0.001 \(n=8\), z ", check.description)
    assert found and float(found[1]) < 10 and 0.1 < float(found[2]) < 1, check.description
    assert check.metadata["outliers"].value == 2 and check.metadata["series_compared"].value == 1
    table = check.metadata["flags"].value
    assert table.splitlines()[0] == "| series | tag | metric | value | basis | site median | z | range |"
    assert f"| 2 | T1 | cjv | {found[2]} | site history | 0.001 | " in table
    materialization = result.asset_materializations_for_node("qc_metrics")[0]
    flagged = materialization.metadata["flagged"].value
    # a phantom is never held to MRIQC's typical ranges (they describe brains): its site outliers only
    assert flagged == 2 and "typical range" not in materialization.metadata["flags"].value
    rows = store.query(f"SELECT metric, basis, n_history, software FROM qc_flags WHERE session = '{PHANTOM}' "
                       "AND basis = 'site history' ORDER BY metric")
    assert rows == [{"metric": "cjv", "basis": "site history", "n_history": 8, "software": SOFTWARE},
                    {"metric": "cnr", "basis": "site history", "n_history": 8, "software": SOFTWARE}]
    assert store.query(f"SELECT count(*) AS n FROM qc_flags WHERE session = '{PHANTOM}'") == [{"n": flagged}]
    [row] = store.query("SELECT passed, detail FROM check_results WHERE check_name = 'qc_outliers'")
    assert row["passed"] is False and row["detail"].startswith(f"cnr {found[1]}: site median 1e+03 (n=8), z -")
    qc_json = json.loads(next((data / "nii").rglob("*_qc.json")).read_text())  # the typical-range flags stand alone
    assert {"metric": "wm2max", "value": qc_json["wm2max"], "basis": "typical range", "low": 0.5, "high": 0.85,
            "better": "in range"} in qc_json["datman_flags"]
