"""Header drift through the whole job: promote a gold standard, catch an upgrade, survive a bad gold file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pydicom
import pytest

from datman_flow.store import query
from datman_flow.xnat.emulator import XnatEmulator

from pipeline_helpers import CONFIGS, PHANTOM, copy_session, ingest, sample_template, series_files

BASE, UPGRADED = "SPN01_CMH_0101_01_01", "SPN01_CMH_0102_01_01"


def edit_headers(session_dir, **values) -> None:
    for path in series_files(session_dir):
        ds = pydicom.dcmread(path)
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.save_as(path)


@pytest.fixture
def lab(tmp_path_factory, tmp_path, monkeypatch):
    """A copy of the example configs, and two participant sessions (one T1 each) on the emulator:
    the second after a software upgrade and an echo-time edit."""
    template = sample_template(tmp_path_factory.mktemp("samples"), [PHANTOM])
    copy_session(template, tmp_path / "xnat", "SPINS_CMH", PHANTOM, BASE)
    upgraded = copy_session(template, tmp_path / "xnat", "SPINS_CMH", PHANTOM, UPGRADED)
    edit_headers(upgraded, SoftwareVersions="syngo MR XA60", EchoTime=3.48)
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    with XnatEmulator(tmp_path / "xnat", port=0, user="u", password="p") as xnat:
        env = {"DATMAN_XNAT_URL": xnat.url, "XNAT_USER": "u", "XNAT_PASS": "p"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield configs, tmp_path / "data"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "datman_flow.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120, check=False)


def drift_check(run):
    return next(c for c in run.checks if c[0] == "header_drift")


def test_promoted_gold_standard_catches_the_upgrade_first(lab):
    configs, data = lab
    first = ingest(BASE, data, configs)
    assert drift_check(first)[1] is True and "without a reference" in drift_check(first)[2]
    promoted = cli("gold", "promote", "--session", BASE, "--tag", "T1", "--config-dir", str(configs),
                   "--data-dir", str(data))
    gold_file = configs / "gold" / "SPN01" / "CMH" / "T1.json"
    assert promoted.returncode == 0 and str(gold_file) in promoted.stdout and gold_file.exists()
    listed = cli("gold", "list", "--config-dir", str(configs))
    assert f"SPN01/CMH/T1: from {BASE} series 2" in listed.stdout
    shown = cli("gold", "show", "SPN01", "CMH", "T1", "--config-dir", str(configs))
    assert '"EchoTime": 0.00298' in shown.stdout and '"SoftwareVersions": "syngo MR E11"' in shown.stdout

    second = ingest(UPGRADED, data, configs)
    name, passed, description, severity = drift_check(second)
    assert not passed and severity == "WARN"
    assert description.startswith("SOFTWARE UPGRADE: syngo MR E11 -> syngo MR XA60")
    diffs = query(data / "metrics.duckdb", data / "store",
                  "SELECT field, kind, expected, actual, provisional, gold_source FROM header_diffs "
                  "WHERE session = ?", [UPGRADED])
    assert [(d["field"], d["kind"]) for d in diffs] == [("SoftwareVersions", "software_upgrade"),
                                                       ("EchoTime", "changed")]
    assert diffs[1]["expected"] == "0.00298" and diffs[1]["actual"] == "0.00348"
    assert all(not d["provisional"] and d["gold_source"] == str(gold_file) for d in diffs)

    report = cli("compliance", "--study", "SPN01", "--data-dir", str(data))
    line = next(ln for ln in report.stdout.splitlines() if "SoftwareVersions" in ln)
    # BASE was ingested before any reference existed: its check was not evaluated, so it is
    # counted apart ("no reference yet"), neither complying nor drifted
    assert line.split()[:4] == ["CMH", "T1", "0/2", "1"] and UPGRADED in line and "syngo MR E11 -> syngo MR XA60" in line


def test_severity_error_reports_the_check_at_error(lab):
    configs, data = lab
    study = configs / "studies" / "SPINS.yml"
    study.write_text(study.read_text().replace("sites:\n", "header_check: {severity: error}\n\nsites:\n", 1))
    ingest(BASE, data, configs)
    assert cli("gold", "promote", "--session", BASE, "--tag", "T1", "--config-dir", str(configs),
               "--data-dir", str(data)).returncode == 0
    run = ingest(UPGRADED, data, configs)
    assert drift_check(run)[1] is False and drift_check(run)[3] == "ERROR"
    # blocking: the session's downstream asset (QC metrics) is not computed from drifted data
    assert not run.qc
    assert not query(data / "metrics.duckdb", data / "store", "SELECT * FROM qc_series WHERE session = ?", [UPGRADED])
    assert not run.success and "blocking asset check failed with ERROR severity" in run.error


def test_malformed_gold_file_is_named_and_the_session_is_not_lost(lab):
    configs, data = lab
    gold_file = configs / "gold" / "SPN01" / "CMH" / "T1.json"
    gold_file.parent.mkdir(parents=True)
    gold_file.write_text('{"study": "SPN01", "site": "CMH", "tag": "T1", "parameters": {,}')
    run = ingest(UPGRADED, data, configs)
    assert run.success and run.series[0].conversion_status == "converted"
    name, passed, description, _ = drift_check(run)
    assert not passed and "1 series not checkable" in description
    detail = query(data / "metrics.duckdb", data / "store",
                   "SELECT detail FROM check_results WHERE check_name = 'header_drift'")[0]["detail"]
    assert str(gold_file) in detail
    assert query(data / "metrics.duckdb", data / "store", "SELECT status FROM sessions") == [{"status": "ingested"}]
    shown = cli("gold", "show", "SPN01", "CMH", "T1", "--config-dir", str(configs))
    assert shown.returncode == 1 and str(gold_file) in shown.stderr


def test_phantoms_are_not_promoted_to_gold(lab):
    configs, data = lab
    refused = cli("gold", "promote", "--session", "SPN01_CMH_PHA_FBN0001", "--tag", "T1",
                  "--config-dir", str(configs), "--data-dir", str(data))
    assert refused.returncode == 2 and "phantom" in refused.stderr
