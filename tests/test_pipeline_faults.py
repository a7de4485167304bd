"""Faults and bad input through the whole session job: complete after retries, or failed and never converted."""

from __future__ import annotations

import pytest

from datman_flow.store import query
from datman_flow.xnat import XnatClient
from datman_flow.xnat.emulator import XnatEmulator

from pipeline_helpers import PHANTOM, copy_session, ingest, sample_template, series_files


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return sample_template(tmp_path_factory.mktemp("samples"), [PHANTOM])


@pytest.fixture
def xnat(template, tmp_path, monkeypatch):
    monkeypatch.setattr(XnatClient, "default_retry_budget", 2.0)  # an outage fails in seconds, not minutes
    copy_session(template, tmp_path / "xnat", "SPINS_CMH", PHANTOM)
    with XnatEmulator(tmp_path / "xnat", port=0, user="u", password="p") as emulator:
        monkeypatch.setenv("DATMAN_XNAT_URL", emulator.url)
        monkeypatch.setenv("XNAT_USER", "u")
        monkeypatch.setenv("XNAT_PASS", "p")
        yield emulator


def t1(run):
    return next(s for s in run.series if s.series_number == "2")


def stored(data, sql):
    return query(data / "metrics.duckdb", data / "store", sql)


def test_burst_of_5xx_is_retried_and_the_series_completes(xnat, tmp_path):
    xnat.fail_next(3, status=503)
    run = ingest(PHANTOM, tmp_path / "data")
    assert run.success and t1(run).download_status == "complete" and t1(run).conversion_status == "converted"


def test_zip_cut_on_every_attempt_fails_the_series_and_nothing_is_converted(xnat, tmp_path):
    xnat.cut_next_zip(4096, times=100)
    data = tmp_path / "data"
    run = ingest(PHANTOM, data)
    assert run.success  # the run completes: the failure is recorded, not hidden
    series = t1(run)
    assert series.download_status == "failed" and "ended early" in series.download_message
    assert series.conversion_status == "skipped" and series.nifti_path is None
    raw = data / "raw" / PHANTOM
    assert not (raw / "2").exists() and not [p for p in raw.iterdir() if p.name != ".complete.json"]
    assert not (data / "nii").exists() or not list((data / "nii").rglob("*.nii.gz"))
    assert stored(data, "SELECT status FROM sessions") == [{"status": "partial"}]
    assert run.checks[0][1] is False  # the T1 it expected did not arrive


def test_zip_cut_once_is_retried_and_complete(xnat, tmp_path):
    xnat.cut_next_zip(4096, times=1)
    run = ingest(PHANTOM, tmp_path / "data")
    assert t1(run).download_status == "complete" and t1(run).conversion_status == "converted"


def test_corrupted_transfer_is_caught_by_md5_and_retried(xnat, tmp_path):
    xnat.corrupt_next_file(1)
    run = ingest(PHANTOM, tmp_path / "data")
    assert t1(run).conversion_status == "converted"


def test_session_cookie_expiring_during_the_run_re_authenticates(xnat, tmp_path, monkeypatch):
    original = XnatClient.list_files
    expired = []

    def list_files_after_expiry(self, *args, **kwargs):
        xnat.expire_sessions()  # XNAT dropped the session between two requests of the run
        expired.append(True)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(XnatClient, "list_files", list_files_after_expiry)
    xnat.request_log.clear()
    run = ingest(PHANTOM, tmp_path / "data")
    assert expired and run.success and t1(run).conversion_status == "converted"
    logins = [path for method, path in xnat.request_log if path.endswith("/JSESSION") and method == "POST"]
    assert len(logins) >= 2  # logged in again after the 401


def test_truncated_dicom_among_good_ones_fails_that_series_with_the_file_named(xnat, tmp_path):
    victim = series_files(tmp_path / "xnat" / "SPINS_CMH" / PHANTOM)[10]
    victim.write_bytes(victim.read_bytes()[:3000])  # header intact, pixel data cut short
    data = tmp_path / "data"
    run = ingest(PHANTOM, data)
    series = t1(run)
    assert run.success and series.conversion_status == "failed"
    assert victim.name in series.conversion_message
    assert not list((data / "nii").rglob("*.nii.gz")) if (data / "nii").exists() else True
    assert stored(data, "SELECT status FROM sessions") == [{"status": "partial"}]


def test_non_dicom_files_in_the_session_are_ignored(xnat, tmp_path):
    session = tmp_path / "xnat" / "SPINS_CMH" / PHANTOM
    (session / "README.txt").write_text("scanner notes")
    (session / "2-Sag_T1_BRAVO" / "notes.dcm").write_bytes(b"not a dicom file at all" * 20)
    run = ingest(PHANTOM, tmp_path / "data")
    assert t1(run).n_files == 72 and t1(run).conversion_status == "converted"


def test_xnat_down_fails_the_run_with_the_reason_and_records_it(xnat, tmp_path):
    xnat.stop()
    data = tmp_path / "data"
    run = ingest(PHANTOM, data)
    assert not run.success and "XNAT" in run.error
    row = stored(data, "SELECT status, reason FROM sessions")[0]
    assert row["status"] == "failed" and "pull failed" in row["reason"]


def test_rerun_is_idempotent(xnat, tmp_path):
    data = tmp_path / "data"
    first = ingest(PHANTOM, data)
    xnat.request_log.clear()
    second = ingest(PHANTOM, data)
    assert first.success and second.success
    assert [s.nifti_path for s in first.series] == [s.nifti_path for s in second.series]
    assert not any("format=zip" in path for _, path in xnat.request_log)  # verified copy kept, not re-downloaded
    counts = stored(data, "SELECT (SELECT count(*) FROM sessions) s, (SELECT count(*) FROM series) r, "
                          "(SELECT count(*) FROM check_results) c")
    # expected_series, header_drift, qc_outliers and normalisation (the phantom's T1w), once each
    assert counts == [{"s": 1, "r": 1, "c": 4}]
    morphometry = stored(data, "SELECT count(*) n FROM morphometry")
    assert morphometry == [{"n": 1}]  # one row per T1w, replaced by the re-run
    derived = sorted(p.name for p in (data / "derivatives").rglob("*") if p.is_file())
    assert len(derived) == len(set(derived)) and sum(n.endswith("_derivatives.json") for n in derived) == 1
