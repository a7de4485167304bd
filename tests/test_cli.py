"""The `datman-flow` command as a lab's cron job or study lead uses it (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from datman_flow.store import query
from datman_flow.xnat.emulator import XnatEmulator

from pipeline_helpers import CONFIGS, PHANTOM, copy_session, sample_template

CLI = [sys.executable, "-m", "datman_flow.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd, timeout=300, check=False)


@pytest.fixture(scope="module")
def xnat(tmp_path_factory):
    """Six phantom sessions and one session with an invalid label, served by the emulator."""
    root = tmp_path_factory.mktemp("cli")
    template = sample_template(root / "template", [PHANTOM])
    for n in range(1, 7):
        copy_session(template, root / "xnat", "SPINS_CMH", PHANTOM, f"SPN01_CMH_PHA_FBN000{n}")
    copy_session(template, root / "xnat", "SPINS_CMH", PHANTOM, "SPN01-CMH-0009")
    with XnatEmulator(root / "xnat", port=0, user="u", password="p") as emulator:
        yield emulator, {"DATMAN_XNAT_URL": emulator.url, "XNAT_USER": "u", "XNAT_PASS": "p",
                         "DATMAN_CONFIG_DIR": str(CONFIGS), "DATMAN_SETTLE_MINUTES": "0"}


def test_config_check_ok_and_errors_with_file_line(tmp_path):
    ok = run_cli("config", "check", "--config-dir", str(CONFIGS))
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = tmp_path / "configs"
    (bad / "studies").mkdir(parents=True)
    (bad / "tags.yml").write_text("T1: {qc: anat}\n")
    (bad / "studies" / "X.yml").write_text(
        "study: X_1\nxnat: {url: http://h, project: P}\nsites:\n  A:\n    tags:\n      T2: {match: {SeriesDescription: '('}}\n")
    result = run_cli("config", "check", "--config-dir", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"{bad / 'studies' / 'X.yml'}:1:") and "X_1" in line for line in lines)
    assert any(":6:" in line and "T2" in line for line in lines)
    assert lines[-1].startswith("2 error(s)") or lines[-1].startswith("3 error(s)")


def test_ingest_one_session_exit_zero_and_prints_the_check(xnat, tmp_path):
    _, env = xnat
    result = run_cli("ingest", "--session", "SPN01_CMH_PHA_FBN0001", "--data-dir", str(tmp_path / "d"), env=env)
    assert result.returncode == 0, result.stderr
    assert "check expected_series: PASS" in result.stdout and "converted" in result.stdout


def test_ingest_invalid_label_or_unknown_session_exits_non_zero_with_the_reason(xnat, tmp_path):
    _, env = xnat
    bad = run_cli("ingest", "--session", "SPN01-CMH-0009", "--data-dir", str(tmp_path / "d"), env=env)
    assert bad.returncode == 1 and "invalid session label" in bad.stderr
    missing = run_cli("ingest", "--session", "SPN01_CMH_9999_01_01", "--data-dir", str(tmp_path / "d"), env=env)
    assert missing.returncode == 1 and "is not in XNAT project 'SPINS_CMH'" in missing.stdout


def test_ingest_new_polls_once_then_finds_nothing_new(xnat, tmp_path):
    emulator, env = xnat
    data = tmp_path / "d"
    first = run_cli("ingest", "--new", "--data-dir", str(data), env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "7 session(s): 6 new, 1 rejected" in first.stdout and "6 of 6 session(s) ingested" in first.stdout
    assert "SPN01-CMH-0009: not ingested" in first.stderr
    assert "warning: XNAT project 'SPINS_ZHH'" in first.stderr  # not on this XNAT: said, and the rest goes on
    second = run_cli("ingest", "--new", "--data-dir", str(data), env=env)
    assert second.returncode == 0 and "0 new" in second.stdout and "0 of 0 session(s)" in second.stdout
    rows = query(data / "metrics.duckdb", data / "store", "SELECT status, count(*) n FROM sessions GROUP BY ALL ORDER BY 1")
    assert rows == [{"status": "ingested", "n": 6}, {"status": "rejected", "n": 1}]


@pytest.mark.slow
def test_six_sessions_ingested_at_once_into_one_store_lose_nothing(xnat, tmp_path):
    """Six processes write one data folder at the same time (DuckDB allows one writer per file)."""
    _, env = xnat
    data = tmp_path / "shared-data"
    labels = [f"SPN01_CMH_PHA_FBN000{n}" for n in range(1, 7)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(
            lambda label: run_cli("ingest", "--session", label, "--data-dir", str(data), env=env), labels))
    assert [r.returncode for r in results] == [0] * 6, [(r.stdout[-800:], r.stderr[-500:]) for r in results if r.returncode]
    rows = query(data / "metrics.duckdb", data / "store",
                 "SELECT (SELECT count(*) FROM sessions WHERE status = 'ingested') s, "
                 "(SELECT count(DISTINCT session) FROM series WHERE conversion_status = 'converted') r, "
                 "(SELECT count(*) FROM check_results WHERE passed AND check_name = 'expected_series') c")
    assert rows == [{"s": 6, "r": 6, "c": 6}]
    assert len(list((data / "nii").rglob("*.nii.gz"))) == 6


def test_dry_run_lists_what_would_happen_and_changes_nothing(xnat, tmp_path):
    _, env = xnat
    data = tmp_path / "d"
    result = run_cli("ingest", "--new", "--dry-run", "--data-dir", str(data), env=env)
    assert result.returncode == 0, result.stderr
    assert "SPN01_CMH_PHA_FBN0001: would be ingested from XNAT project SPINS_CMH (expects T1 x1)" in result.stdout
    assert "dry run: 6 session(s) would be ingested" in result.stdout
    assert not data.exists()  # no cursor, no rejected rows, no downloads


def test_qc_command_prints_metrics_as_json(tmp_path):
    import json

    import nibabel as nib
    import numpy as np

    from datman_flow.qc.kinds import range_flags
    from datman_flow.samples import phantom
    from datman_flow.samples.sessions import BOLD_GRID

    data = phantom.bold_series(BOLD_GRID, 7, n_volumes=20, motion_mm=0.1)  # (x, y, z, t)
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([3.5, 3.5, 3.5, 1.0])), path)
    result = run_cli("qc", str(path), "--type", "fmri", "--picture", str(tmp_path / "bold.png"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["type"] == "fmri" and {"tsnr", "fd_mean", "dvars_std", "efc"} <= set(report["metrics"])
    assert report["flags"] == [f.as_json() for f in range_flags("fmri", report["metrics"])]  # outside typical ranges
    assert (tmp_path / "bold.png").stat().st_size > 10_000
    missing = run_cli("qc", str(tmp_path / "nope.nii.gz"), "--type", "fmri")
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_a_scan_that_did_not_arrive_exits_3_and_the_next_new_retries_it(tmp_path):
    """What a cron job sees: exit 3 while a scan is missing, the session retried by a later
    `ingest --new` (the sensor's bookkeeping), then complete."""
    from xnat_helpers import make_session

    make_session(tmp_path / "xnat", "SPINS_CMH", "SPN01_CMH_0001_01_01")
    data = tmp_path / "d"
    with XnatEmulator(tmp_path / "xnat", port=0, user="u", password="p") as emulator:
        env = {"DATMAN_XNAT_URL": emulator.url, "XNAT_USER": "u", "XNAT_PASS": "p", "DATMAN_CONFIG_DIR": str(CONFIGS),
               "DATMAN_SETTLE_MINUTES": "0"}
        emulator.cut_next_zip(100, times=1000)  # every download is cut short
        first = run_cli("ingest", "--new", "--retry-delays", "0", "--data-dir", str(data), env=env)
        assert first.returncode == 3, first.stdout + first.stderr
        assert "incomplete (a scan not downloaded): SPN01_CMH_0001_01_01" in first.stdout
        assert "retry 1 at" in first.stdout
        emulator.clear_faults()
        second = run_cli("ingest", "--new", "--retry-delays", "0", "--data-dir", str(data), env=env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "0 new, 0 rejected, 1 to retry" in second.stdout and "1 of 1 session(s) ingested" in second.stdout
    rows = query(data / "metrics.duckdb", data / "store", "SELECT download_status, count(*) n FROM series GROUP BY ALL")
    assert rows == [{"download_status": "complete", "n": 2}]
    bad = run_cli("ingest", "--new", "--retry-delays", "10,x", "--data-dir", str(data), env=env)
    assert bad.returncode == 2 and "minutes separated by commas" in bad.stderr


def test_status_with_an_unreadable_store_file_exits_zero_and_names_it(tmp_path):
    from datman_flow.store import MetricStore, SessionRow

    store = MetricStore.under(tmp_path / "d")
    for label in ("SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01"):
        store.replace(SessionRow, label, [SessionRow(session=label, status="ingested")])
    (store.parquet_dir / "sessions" / "SPN01_CMH_0002_01_01.parquet").write_bytes(b"")  # a copy cut short
    result = run_cli("status", "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    assert "SPN01_CMH_0001_01_01" in result.stdout and "SPN01_CMH_0002_01_01" not in result.stdout
    assert "Traceback" not in result.stderr
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: quarantined")]
    assert len(warning) == 1 and "sessions/SPN01_CMH_0002_01_01.parquet" in warning[0]
    assert "SPN01_CMH_0002_01_01" in warning[0] and "re-ingest" in warning[0]
    again = run_cli("status", "--data-dir", str(tmp_path / "d"))  # still listed until the session is written again
    assert again.returncode == 0 and "warning: quarantined" in again.stderr


def test_sigterm_ends_a_stuck_ingest_within_seconds_and_records_why(tmp_path):
    """A server that drips one byte every two seconds; the operator (or systemd) sends SIGTERM."""
    import signal
    import time

    from xnat_helpers import make_session

    make_session(tmp_path / "xnat", "SPINS_CMH", "SPN01_CMH_0001_01_01")
    data = tmp_path / "d"
    with XnatEmulator(tmp_path / "xnat", port=0, user="u", password="p") as emulator:
        emulator.drip_next(2.0, after_bytes=100)
        env = {**os.environ, "DATMAN_XNAT_URL": emulator.url, "XNAT_USER": "u", "XNAT_PASS": "p",
               "DATMAN_CONFIG_DIR": str(CONFIGS)}
        process = subprocess.Popen([*CLI, "ingest", "--session", "SPN01_CMH_0001_01_01", "--data-dir", str(data)],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (data / "store" / "sessions").is_dir() and time.monotonic() < deadline:
            time.sleep(0.2)  # the pull has started
        time.sleep(2.0)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
        assert time.monotonic() - sent < 10 and process.returncode == 1
    assert "FAILED: pull interrupted (DagsterExecutionInterruptedError)" in out  # the health verdict's reason
    rows = query(data / "metrics.duckdb", data / "store", "SELECT status, reason FROM sessions")
    assert rows == [{"status": "failed", "reason": "pull interrupted (DagsterExecutionInterruptedError)"}]
