"""`datman-flow status` as an operator reads it (health, checks, filters, a table), commands
pointed at a data folder that is not there, and the per-session header of a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from datman_flow.cli.render import arrival_line, run_text
from datman_flow.defs.runner import SessionRun
from datman_flow.pipeline.health import Health, Problem
from datman_flow.store import CheckRow, MetricStore, SeriesRow, SessionRow

from pipeline_helpers import CONFIGS

CLI = [sys.executable, "-m", "datman_flow.cli"]
OK, MISSING, FAILED, WAITING = ("SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01", "SPN01_CMH_0003_01_01",
                                "SPN01_CMH_0004_01_01")
OLD = "OLD02_TGH_0001_01_01"  # a study no longer configured, still in the store


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATMAN_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env={**env, "DATMAN_CONFIG_DIR": str(CONFIGS)},
                          cwd=cwd, timeout=120, check=False)


def record_session(store: MetricStore, label: str, scan_date: str, health: str, reasons: str = "",
                   status: str = "ingested", converted: int = 1) -> None:
    study, site, subject = label.split("_")[:3]
    inserted = f"{scan_date[:4]}-{scan_date[4:6]}-{scan_date[6:]} 09:30:00.0"  # as XNAT writes it
    store.replace(SessionRow, label, [SessionRow(session=label, study=study, site=site, subject=subject,
                                                 scan_date=scan_date, insert_date=inserted,
                                                 ingested_at=datetime(2024, 6, 1, 12), status=status,
                                                 health=health, health_reasons=reasons)])
    store.replace(SeriesRow, label, [
        SeriesRow(session=label, scan_id=str(n), series_number=str(n), tag="T1", download_status="complete",
                  conversion_status="converted" if n <= converted else "failed") for n in (1, 2)])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Five sessions: ok, attention (no DTI60; drift not evaluated), failed, not evaluated yet, old study."""
    root = tmp_path_factory.mktemp("status") / "data"
    store = MetricStore.under(root)
    record_session(store, OK, "20240110", "ok", converted=2)
    record_session(store, MISSING, "20240320", "attention", "missing DTI60 (0/1)", converted=2)
    record_session(store, FAILED, "20240215", "failed", "raw_dicom: XNAT unreachable", status="failed", converted=0)
    record_session(store, WAITING, "20240401", "", status="ingesting", converted=0)
    record_session(store, OLD, "20200101", "ok", converted=2)
    store.replace(CheckRow, OK, [CheckRow(session=OK, check_name="expected_series", tag="T1", passed=True,
                                          expected=2, found=2, detail="ok", series=("1", "2"))],
                  part="expected_series")
    store.replace(CheckRow, MISSING, [
        CheckRow(session=MISSING, check_name="expected_series", tag="DTI60", passed=False, expected=1, found=0,
                 detail="missing 1"),
        CheckRow(session=MISSING, check_name="expected_series", tag="T1", passed=True, expected=2, found=2,
                 detail="ok", series=("1", "2"))], part="expected_series")
    store.replace(CheckRow, MISSING, [
        CheckRow(session=MISSING, check_name="header_drift", tag="T1", passed=None, found=0,
                 detail="no reference yet", series=("1",)),
        CheckRow(session=MISSING, check_name="header_drift", tag="T1", passed=False, found=2,
                 detail="EchoTime changed; SoftwareVersions software_upgrade", series=("2",))], part="header_drift")
    return root


def test_json_lines_by_label_carry_health_counts_and_checks(data):
    result = run_cli("status", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["session"] for r in rows] == [OLD, OK, MISSING, FAILED, WAITING]  # sorted by label
    by = {r["session"]: r for r in rows}
    assert by[OK]["health"] == "ok" and by[OK]["checks"] == {"expected_series": "PASS"}
    missing = by[MISSING]
    assert missing["health"] == "attention" and missing["health_reasons"] == "missing DTI60 (0/1)"
    assert missing["checks"] == {
        "expected_series": "FAIL missing DTI60 (0/1)",
        "header_drift": "FAIL T1 series 2: EchoTime changed, SoftwareVersions software_upgrade; "
                        "not evaluated: T1 series 1: no reference yet"}
    assert missing["checks_failed"] == 2 and missing["checks_not_evaluated"] == 1
    assert missing["scan_date"] == "2024-03-20" and missing["insert_date"] == "2024-03-20T09:30:00"
    assert (missing["series"], missing["converted"], missing["status"]) == (2, 2, "ingested")
    assert by[FAILED]["health"] == "failed" and by[FAILED]["failed_conversions"] == 2 and by[FAILED]["checks"] == {}
    assert by[WAITING]["health"] == "" and by[WAITING]["status"] == "ingesting"


def test_table_newest_scan_first_with_health_why_and_a_count(data):
    result = run_cli("status", "--table", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    header, *lines, total = result.stdout.splitlines()
    assert header.split() == ["session", "scan", "date", "status", "health", "converted", "qc", "review", "why",
                              "checks"]
    assert [line.split()[0] for line in lines] == [WAITING, MISSING, FAILED, OK, OLD]
    assert lines[0].split()[1:4] == ["2024-04-01", "ingesting", "-"]
    assert "attention" in lines[1] and "missing DTI60 (0/1)" in lines[1] and "NOT EVALUATED" not in lines[1]
    assert "expected_series: FAIL missing DTI60 (0/1); header_drift: FAIL T1 series 2" in lines[1]
    assert lines[2].split()[2:5] == ["failed", "failed", "0/2"] and "raw_dicom: XNAT unreachable" in lines[2]
    assert lines[3].rstrip().endswith("pass")
    columns = header.index("health")
    assert all(line[columns:].split()[0] in ("ok", "attention", "failed", "-") for line in lines)  # aligned
    assert total == "5 session(s): 1 failed, 1 attention, 2 ok, 1 not evaluated"


def test_attention_keeps_only_sessions_needing_a_person(data):
    result = run_cli("status", "--attention", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["session"] for line in result.stdout.splitlines()] == [MISSING, FAILED]


def test_study_filter_known_from_config_or_store_and_unknown_with_a_suggestion(data):
    spins = run_cli("status", "--study", "SPN01", "--table", "--data-dir", str(data))
    assert spins.returncode == 0, spins.stderr
    assert OLD not in spins.stdout and spins.stdout.splitlines()[-1].startswith("4 session(s)")
    old = run_cli("status", "--study", "OLD02", "--data-dir", str(data))  # not configured, but recorded
    assert old.returncode == 0, old.stderr
    assert [json.loads(line)["session"] for line in old.stdout.splitlines()] == [OLD]
    typo = run_cli("status", "--study", "SPN1", "--data-dir", str(data))
    assert typo.returncode == 2 and typo.stdout == ""
    assert "unknown study 'SPN1' (did you mean 'SPN01'?)" in typo.stderr and "OLD02" in typo.stderr
    attention = run_cli("status", "--study", "OLD02", "--attention", "--data-dir", str(data))
    assert attention.returncode == 0 and attention.stdout == ""


def test_compliance_of_an_unknown_study_exits_2_with_a_suggestion(data):
    result = run_cli("compliance", "--study", "SPN1", "--data-dir", str(data))
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown study 'SPN1' (did you mean 'SPN01'?)" in result.stderr and "Traceback" not in result.stderr
    known = run_cli("compliance", "--study", "SPN01", "--data-dir", str(data))
    assert known.returncode == 0, known.stderr
    assert "protocol compliance of SPN01" in known.stdout


@pytest.mark.parametrize("command", [["status"], ["status", "--table"], ["compliance", "--study", "SPN01"],
                                     ["gold", "promote", "--session", OK, "--tag", "T1"]])
def test_a_missing_data_folder_is_named_exits_2_and_is_not_created(tmp_path, command):
    missing = tmp_path / "nowhere"
    result = run_cli(*command, "--data-dir", str(missing))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"no data folder at {missing}" in result.stderr and "DATMAN_DATA_DIR" in result.stderr
    assert not missing.exists() and list(tmp_path.iterdir()) == []
    default = run_cli(*command, cwd=tmp_path)  # ./data by default
    assert default.returncode == 2 and f"no data folder at {tmp_path / 'data'}" in default.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_empty_data_folder_is_read_without_creating_a_store(tmp_path):
    status = run_cli("status", "--data-dir", str(tmp_path))
    assert status.returncode == 0 and status.stdout == "" and "no metric store" in status.stderr
    compliance = run_cli("compliance", "--study", "SPN01", "--data-dir", str(tmp_path))
    assert compliance.returncode == 0 and "no converted series recorded yet" in compliance.stdout
    promote = run_cli("gold", "promote", "--session", OK, "--tag", "T1", "--data-dir", str(tmp_path))
    assert promote.returncode == 1 and "no metric store" in promote.stderr
    assert list(tmp_path.iterdir()) == []  # no store/, no metrics.duckdb, no lock file


def health(verdict: str, *reasons: str) -> Health:
    return Health(verdict, tuple(Problem("missing", reason, "") for reason in reasons))


def test_run_header_shows_the_sessions_health_not_just_the_runs_success():
    missing_dti = SessionRun(MISSING, success=True, checks=[("expected_series", False, "missing DTI60 (0/1)", "WARN")],
                             health=health("attention", "missing DTI60 (0/1)"))
    text = run_text(missing_dti)
    assert text.splitlines()[1] == f"== {MISSING}: attention (missing DTI60 (0/1))"
    assert "check expected_series: FAIL (missing DTI60 (0/1))" in text
    fine = SessionRun(OK, success=True, checks=[("expected_series", True, "ok", "WARN")], health=health("ok"))
    assert run_text(fine).splitlines()[1] == f"== {OK}: ok"
    broken = SessionRun(FAILED, success=False, error="raw_dicom: XNAT unreachable",
                        health=health("failed", "pull failed: XNAT unreachable"))
    assert run_text(broken).splitlines()[1] == f"== {FAILED}: FAILED: pull failed: XNAT unreachable"
    not_started = SessionRun(FAILED, success=False, error="raw_dicom: XNAT_USER is not set")
    assert run_text(not_started).splitlines()[1] == f"== {FAILED}: FAILED: raw_dicom: XNAT_USER is not set"


def test_demo_arrival_line_is_marked_and_coloured_only_for_a_terminal():
    at = datetime(2024, 6, 1, 14, 2, 11)
    plain = arrival_line(OK, "complete session", at, colour=False)
    assert plain == f"==> [demo] 14:02:11 session {OK} arrived on XNAT (complete session)"
    coloured = arrival_line(OK, "complete session", at, colour=True)
    assert coloured.startswith("\033[") and plain in coloured and coloured.endswith("\033[0m")
