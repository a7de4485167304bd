"""The newcomer's first command, headless: every sample session ingested, summaries printed, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from bids_helpers import assert_valid, exported_niftis, indexed_runs

from datman_flow.layout import DataLayout
from datman_flow.review.accounts import Accounts
from datman_flow.store import query

from pipeline_helpers import REPO
from review_helpers import decide, sign_off


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`datman-flow demo --headless`, once for the module: its result and folder."""
    root = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATMAN_", "XNAT_", "DAGSTER_HOME"))}
    result = subprocess.run([sys.executable, "-m", "datman_flow.cli", "demo", "--headless", "--dir", str(root)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    return result, root, env


@pytest.mark.slow
def test_demo_headless_ingests_every_sample_session(demo):
    result, tmp_path, _ = demo
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "7 session(s): 6 new, 1 rejected" in out and "6 of 6 sessions ingested" in out
    assert "badlabel_session: not ingested: invalid session label" in result.stderr
    assert "check expected_series: FAIL (missing DTI60 (0/1))" in out  # the session without its DTI
    headers = [line for line in out.splitlines() if line.startswith("== ")]  # each session's health, not "ok"
    assert len(headers) == 6 and sum(line.endswith(": attention (missing DTI60 (0/1))") for line in headers) == 1
    assert sum(": attention (software upgrade syngo MR E11 -> syngo MR E11C; T1 drifted: EchoTime" in line
               for line in headers) == 1
    assert sum(line.endswith(": ok") for line in headers) == 4
    assert "Localizer 3-plane" in out and "no rule matched" in out  # the series no rule matches
    assert out.count("check expected_series: PASS") == 5  # four complete sessions and the phantom
    # the session after a scanner upgrade, against the provisional reference of three earlier sessions
    assert "check header_drift: FAIL (SOFTWARE UPGRADE: syngo MR E11 -> syngo MR E11C; 3 finding(s) in " \
           "EchoTime, SoftwareVersions" in out
    data = tmp_path / "data"
    assert f"review app on http://127.0.0.1:8050 once `datman-flow review --data-dir {data}` runs " \
           f"(login demo / demo-review)" in out
    assert Accounts(data).verify("demo", "demo-review")
    assert out.count("  review: pending: awaiting review") == 6  # every session ingested, none reviewed yet
    rows = query(data / "metrics.duckdb", data / "store", "SELECT status, count(*) n FROM sessions GROUP BY ALL ORDER BY 1")
    assert rows == [{"status": "ingested", "n": 6}, {"status": "rejected", "n": 1}]
    assert len(list((data / "nii").rglob("*.nii.gz"))) == 15  # 3 + 2 + 3 + 3 + 1 + 3 tagged series
    diffs = query(data / "metrics.duckdb", data / "store",
                  "SELECT tag, field, kind, provisional FROM header_diffs ORDER BY tag, kind DESC, field")
    assert diffs == [
        {"tag": "RST", "field": "SoftwareVersions", "kind": "software_upgrade", "provisional": True},
        {"tag": "T1", "field": "SoftwareVersions", "kind": "software_upgrade", "provisional": True},
        {"tag": "T1", "field": "EchoTime", "kind": "changed", "provisional": True}]
    qc = query(data / "metrics.duckdb", data / "store",
               "SELECT q.session, q.picture_path, m.value AS tsnr FROM qc_series q JOIN qc_metrics m "
               "USING (session, series_number) WHERE q.qc_type = 'fmri' AND q.status = 'measured' "
               "AND m.metric = 'tsnr' ORDER BY 1")
    assert len(qc) == 5 and all(20 < row["tsnr"] < 120 for row in qc)  # every resting-state series measured
    assert all(row["picture_path"].endswith("_qc.png") and os.path.exists(row["picture_path"]) for row in qc)


@pytest.mark.slow
def test_the_demo_study_released_as_valid_bids(demo):
    """Signed off, the demo's sessions go out as a BIDS dataset the real validator accepts and pybids
    reads; the session a reviewer has not signed off, the series blacklisted and those whose tag has
    no BIDS place are left out, each with its reason; a second export rewrites nothing."""
    result, root, env = demo
    assert result.returncode == 0
    data, out = root / "data", root / "release"
    store = DataLayout(data).metric_store
    labels = [row["session"] for row in query(data / "metrics.duckdb", data / "store",
                                              "SELECT session FROM sessions WHERE status = 'ingested' ORDER BY 1")]
    decide(store, "SPN01_CMH_0004_01_01", "4", "blacklisted", "demo", "motion")  # then signed off: settled
    for label in labels:
        if label != "SPN01_CMH_0005_01_01":
            sign_off(store, label, "demo")
    command = [sys.executable, "-m", "datman_flow.cli", "bids", "export", "--study", "SPN01", "--data-dir", str(data),
               "--out", str(out)]
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "participants: " in first.stdout and \
        "4 visit(s) written, 0 unchanged, 0 removed; 4 T1w with derivatives" in first.stdout
    assert "derivatives not exported" not in first.stdout
    assert "left out session SPN01_CMH_0005_01_01: not signed off by a reviewer (bids: require_sign_off)" \
        in first.stdout
    assert "left out SPN01_CMH_0004_01_01 series 4 (DTI60): blacklisted by demo: motion" in first.stdout
    assert_valid(out)
    assert_valid(out.with_name("release_phantoms"))
    exported = exported_niftis(out)
    assert len(exported) == 10 and indexed_runs(out) == exported  # 3 + 2 + 2 + 3: no DTI in 0002, one blacklisted
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert "0 visit(s) written, 4 unchanged, 0 removed" in again.stdout
