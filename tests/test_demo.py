"""The newcomer's first command, headless: every sample session ingested, summaries printed, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from datman_flow.review.accounts import Accounts
from datman_flow.store import query

from pipeline_helpers import REPO


@pytest.mark.slow
def test_demo_headless_ingests_every_sample_session(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATMAN_", "XNAT_", "DAGSTER_HOME"))}
    result = subprocess.run([sys.executable, "-m", "datman_flow.cli", "demo", "--headless", "--dir", str(tmp_path)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
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
