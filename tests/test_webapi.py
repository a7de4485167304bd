"""`datman-flow webapi submit` against a local stand-in of MRIQC's Web-API that validates records
as Eve does: what it receives (hashed subject and session, modality, TaskName, md5sum), nothing
sent twice, a 422 reported and not recorded, dry runs, blacklisted and diffusion series kept
back, and the IQMs datman-flow does not compute named instead of made up."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest

from datman_flow.cli import main
from datman_flow.export.webapi import webapi_record
from datman_flow.naming import parse_session_label
from datman_flow.qc.measure import analyse, mriqc_record, write_json_atomic
from datman_flow.qc.result import QCResult
from datman_flow.store import MetricStore
from datman_flow.store.review_rows import SeriesDecisionRow
from datman_flow.store.webapi_rows import WebapiSubmissionRow

from measured_helpers import QC_LABEL, md5_of, measured_copy
from webapi_standin import WebapiStandin

TOKEN = "secret-webapi-token"
TPM = ("tpm_overlap_csf", "tpm_overlap_gm", "tpm_overlap_wm")  # the last T1w IQMs computed (the MNI registration)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def t1_metrics(qc_session) -> dict[str, float]:
    """The fixture's T1 measured for real (its fixture skips the analysis: seconds)."""
    t1 = next(q for q in qc_session[1] if q.kind == "anat")
    return analyse("anat", Path(str(t1.series.nifti_path))).result.metrics


@pytest.fixture()
def measured(qc_session, t1_metrics, tmp_path, monkeypatch):
    """A data folder with the session measured (the T1 really), the token and configs set."""
    data, rows = measured_copy(qc_session, tmp_path)
    t1 = next(r for r in rows if r.qc_type == "anat")
    nifti = Path(t1.json_path.replace("_qc.json", ".nii.gz"))
    write_json_atomic(Path(t1.json_path), mriqc_record(QCResult("anat", t1_metrics), nifti))
    monkeypatch.setenv("DATMAN_WEBAPI_TOKEN", TOKEN)
    monkeypatch.setenv("DATMAN_CONFIG_DIR", str(REPO / "configs"))
    return data, {r.tag: r for r in rows}


def submit(data: Path, api: WebapiStandin | str, *extra: str) -> int:
    endpoint = api if isinstance(api, str) else f"{api.url}/api/v1"
    return main(["webapi", "submit", "--session", QC_LABEL, "--endpoint", endpoint, "--data-dir", str(data), *extra])


def sent_rows(data: Path) -> list[WebapiSubmissionRow]:
    return MetricStore.under(data).read(WebapiSubmissionRow, QC_LABEL)


def test_a_measured_session_s_bold_and_t1w_records_are_accepted(measured, capsys):
    data, rows = measured
    with WebapiStandin(TOKEN) as api:
        assert submit(data, api) == 0
    printed = capsys.readouterr().out
    assert len(api.accepted["T1w"]) == 1 and len(api.accepted["bold"]) == 1 and api.refused == []
    record = api.accepted["bold"][0]
    meta, prov = record["bids_meta"], record["provenance"]
    assert meta["modality"] == "bold"
    assert meta["subject_id"] == hashlib.sha256(b"CMH0001").hexdigest()
    assert meta["session_id"] == hashlib.sha256(b"01").hexdigest()
    assert meta["TaskName"] == "rst"  # no TaskName in the sidecar: the tag, lower case
    nifti = Path(rows["RST"].json_path.replace("_qc.json", ".nii.gz"))
    assert prov["md5sum"] == hashlib.md5(nifti.read_bytes()).hexdigest() == md5_of(rows["RST"])
    assert set(prov) == {"version", "md5sum", "software"} and prov["software"] == "datman-flow"
    assert record["tsnr"] > 0 and "datman_flags" not in record
    assert api.authorizations == [TOKEN, TOKEN]

    assert f"{QC_LABEL} series 3 (RST): sent, _id {record['_id']}" in printed
    [t1w] = api.accepted["T1w"]
    assert f"{QC_LABEL} series 2 (T1): sent, _id {t1w['_id']}" in printed
    assert all(0 < t1w[name] < 1 for name in TPM)  # measured, not made up
    assert f"{QC_LABEL} series 4 (DTI60): not sent: dwi series" in printed
    [row] = [r for r in sent_rows(data) if r.modality == "bold"]
    assert (row.series_number, row.modality, row.md5sum, row.endpoint, row.api_id) == (
        "3", "bold", prov["md5sum"], f"{api.url}/api/v1", record["_id"])
    assert isinstance(row.sent_at, datetime)


def test_a_second_submit_sends_nothing(measured, capsys):
    data, _ = measured
    with WebapiStandin(TOKEN) as api:
        assert submit(data, api) == 0
        capsys.readouterr()
        assert submit(data, api) == 0
    assert len(api.accepted["bold"]) == 1 and len(api.accepted["T1w"]) == 1 and len(sent_rows(data)) == 2
    printed = capsys.readouterr().out
    assert f"{QC_LABEL} series 3 (RST): already sent on" in printed and "sent, _id" not in printed
    with WebapiStandin(TOKEN) as other:  # another endpoint: sent there too
        assert submit(data, other) == 0
    assert len(other.accepted["bold"]) == 1 and len(sent_rows(data)) == 4


def test_a_refused_record_is_reported_with_the_server_s_reason_and_not_recorded(measured, capsys):
    data, _ = measured
    with WebapiStandin(TOKEN, extra_required={"bold": ["gcor_v2"]}) as strict:
        assert submit(data, strict) == 1
    printed = capsys.readouterr().out
    assert "series 3 (RST): refused (" in printed and "refused it (422): gcor_v2: required field" in printed
    assert [r.modality for r in sent_rows(data)] == ["T1w"] and strict.accepted["bold"] == []  # the T1w went
    with WebapiStandin(TOKEN) as api:  # not recorded as sent: it goes the next time
        assert submit(data, f"{api.url}/api/v1/") == 0
    assert len(api.accepted["bold"]) == 1
    assert [r.endpoint for r in sent_rows(data) if r.modality == "bold"] == [f"{api.url}/api/v1"]


def test_a_wrong_token_or_no_server_is_a_failure_not_recorded(measured, capsys, monkeypatch):
    data, _ = measured
    monkeypatch.setenv("DATMAN_WEBAPI_TOKEN", "another-token")
    with WebapiStandin(TOKEN) as api:
        assert submit(data, api) == 1
        assert "answered 401" in capsys.readouterr().out
        closed = api.url
    assert submit(data, f"{closed}/api/v1") == 1
    assert "ConnectionError" in capsys.readouterr().out
    assert sent_rows(data) == []


def test_dry_run_prints_and_sends_nothing_even_without_a_token(measured, capsys, monkeypatch):
    data, rows = measured
    monkeypatch.delenv("DATMAN_WEBAPI_TOKEN")
    with WebapiStandin(TOKEN) as api:
        assert submit(data, api, "--dry-run") == 0
    printed = capsys.readouterr().out
    assert api.authorizations == [] and sent_rows(data) == []
    assert "series 3 (RST): would send to" in printed and md5_of(rows["RST"]) in printed
    assert '"TaskName": "rst"' in printed and "done: 1 skipped, 2 would send" in printed
    assert ("left out: datman_flags (not in the Web-API's schema); provenance.settings.convention (not in the "
            "Web-API's schema); provenance.settings.implementation") in printed


def test_without_a_token_the_command_refuses(measured, capsys, monkeypatch):
    data, _ = measured
    monkeypatch.delenv("DATMAN_WEBAPI_TOKEN")
    with WebapiStandin(TOKEN) as api:
        assert submit(data, api) == 2
    assert "DATMAN_WEBAPI_TOKEN" in capsys.readouterr().err and api.authorizations == []


def test_a_blacklisted_series_is_not_sent(measured, capsys):
    data, _ = measured
    MetricStore.under(data).append(SeriesDecisionRow, QC_LABEL, [SeriesDecisionRow(
        id=0, scan_session=QC_LABEL, series_number="3", tag="RST", decision="blacklisted", reason="motion",
        user="ana", created=datetime(2026, 1, 1))])
    with WebapiStandin(TOKEN) as api:
        assert submit(data, api) == 0
    assert [r.modality for r in sent_rows(data)] == ["T1w"] and api.accepted["bold"] == []
    assert f"{QC_LABEL} series 3 (RST): not sent: blacklisted by a reviewer" in capsys.readouterr().out


def test_a_study_s_sessions_and_usage_errors(measured, capsys):
    data, _ = measured
    with WebapiStandin(TOKEN) as api:
        assert main(["webapi", "submit", "--study", "SPN01", "--endpoint", f"{api.url}/api/v1",
                     "--data-dir", str(data)]) == 0
        assert len(api.accepted["bold"]) == 1 and len(api.accepted["T1w"]) == 1
        assert main(["webapi", "submit", "--study", "SPN99", "--data-dir", str(data)]) == 2
        assert main(["webapi", "submit", "--session", "not a label", "--data-dir", str(data)]) == 2
        assert main(["webapi", "submit", "--session", QC_LABEL, "--endpoint", "ftp://x", "--data-dir", str(data)]) == 2


def test_a_t1w_record_passes_the_server_s_schema_as_measured(measured, t1_metrics, capsys):
    """The T1w record as measured (tpm_overlap_* from the MNI registration included) passes the
    server's schema as it is built: sizes as integers, the rest as floats."""
    data, rows = measured
    t1 = rows["T1"]
    with WebapiStandin(TOKEN) as api:
        assert submit(data, api) == 0
    [sent] = api.accepted["T1w"]
    assert sent["size_x"] == int(t1_metrics["size_x"]) and isinstance(sent["size_x"], int)
    assert sent["bids_meta"]["modality"] == "T1w" and "TaskName" not in sent["bids_meta"]
    assert sent["provenance"]["md5sum"] == md5_of(t1)


def test_the_record_keeps_mriqc_s_whitelist_and_the_server_s_types():
    scan_id = parse_session_label(QC_LABEL)
    sidecar = {"MagneticFieldStrength": 3.0, "ImagingFrequency": 123.25, "FlipAngle": 52, "EchoTime": 0.03,
               "PartialFourier": 0.75, "RepetitionTime": 2, "SeriesDescription": "rest (a name?)",
               "PatientName": "Doe^Jane", "TaskName": "rest", "ImageType": ["ORIGINAL", "PRIMARY"],
               "modality": "bold"}
    metrics = {"tsnr": 50.0, "dummy_trs": 2.0, "aor": float("nan")}
    mriqc = {**metrics, "bids_meta": sidecar, "datman_flags": [],
             "provenance": {"md5sum": "a" * 32, "version": "datman-flow 0.1.0", "software": "datman-flow",
                            "settings": {"implementation": "numpy", "fd_thres": 0.2}, "host": "lab-pc"}}
    record = webapi_record(mriqc, scan_id, "fmri", "RST")
    meta = record.payload["bids_meta"]
    assert meta["MagneticFieldStrength"] == 3 and isinstance(meta["MagneticFieldStrength"], int)
    assert meta["RepetitionTime"] == 2.0 and isinstance(meta["RepetitionTime"], float)
    assert meta["TaskName"] == "rest" and meta["ImageType"] == ["ORIGINAL", "PRIMARY"]
    assert "ImagingFrequency" not in meta and "PartialFourier" not in meta  # the server's types refuse them
    assert "SeriesDescription" not in meta and "PatientName" not in meta  # not in MRIQC's whitelist
    assert any("bids_meta.ImagingFrequency (123.25 is not a whole number" in x for x in record.left_out)
    assert record.payload["provenance"] == {"md5sum": "a" * 32, "version": "datman-flow 0.1.0",
                                            "software": "datman-flow", "settings": {"fd_thres": 0.2}}
    assert record.payload["dummy_trs"] == 2 and "datman_flags" not in record.payload
    assert not record.sendable and "IQM aor: nan is not a finite number" in record.why_not
    assert "missing required IQMs aqi, dvars_nstd" in record.why_not
    with pytest.raises(ValueError, match="T1w and bold"):
        webapi_record(mriqc, scan_id, "dwi", "DTI60")


def test_no_required_iqm_is_missing_for_t1w_or_bold(qc_session, t1_metrics):
    scan_id = parse_session_label(QC_LABEL)
    t1 = next(q for q in qc_session[1] if q.kind == "anat")
    t1_record = mriqc_record(QCResult("anat", t1_metrics), Path(str(t1.series.nifti_path)))
    full = webapi_record(t1_record, scan_id, "anat", "T1")
    assert full.missing == () and full.sendable, full.why_not
    without = {k: v for k, v in t1_record.items() if k not in TPM}  # measured before issue 13: named, not made up
    assert webapi_record(without, scan_id, "anat", "T1").missing == TPM
    rst = next(q for q in qc_session[1] if q.kind == "fmri")
    bold = webapi_record(json.loads(Path(rst.json_path).read_text()), scan_id, "fmri", "RST")
    assert bold.missing == () and bold.sendable, bold.why_not


def test_a_server_that_never_answers_is_given_up_on(measured, capsys, monkeypatch):
    """Every request has a deadline: a listening socket that never answers costs the read timeout."""
    import socket
    import time

    import datman_flow.export.webapi_submit as webapi_submit

    data, _ = measured
    monkeypatch.setattr(webapi_submit, "TIMEOUT", (1.0, 1.0))
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody reads or answers
        started = time.monotonic()
        assert submit(data, f"http://127.0.0.1:{silent.getsockname()[1]}/api/v1") == 1
        assert time.monotonic() - started < 10
    assert "ReadTimeout" in capsys.readouterr().out and sent_rows(data) == []
