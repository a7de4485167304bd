"""The XNAT client: listings, authentication and retries, against the emulator over real HTTP."""
from __future__ import annotations

from pathlib import Path

import pytest

from datman_flow.xnat import (
    Experiment,
    RemoteFile,
    Scan,
    XnatAuthError,
    XnatBadResponse,
    XnatClient,
    XnatError,
)
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import LABEL, md5_of, requests_to  # the fixtures client, data and emu: conftest.py


def test_listings(client: XnatClient, data: Path) -> None:
    (exp,) = client.list_experiments("STUDYA")
    assert isinstance(exp, Experiment)
    assert (exp.id, exp.label, exp.project, exp.date, exp.xsi_type, exp.uri) == (
        "XNAT_E00001", LABEL, "STUDYA", "2024-01-02", "xnat:mrSessionData", "/data/experiments/XNAT_E00001")
    assert exp.inserted_at is not None
    scans = client.list_scans(exp.id)
    assert scans[0] == Scan("2", "T1w MPRAGE", "T1w MPRAGE", "usable", "xnat:mrScanData")
    assert [s.id for s in scans] == ["2", "5", "6"]
    files = client.list_files(exp.id, "2")
    src = data / "STUDYA" / LABEL / "s1_2_3_2"
    assert files == [RemoteFile(p.name, p.stat().st_size,
                                f"/data/experiments/XNAT_E00001/scans/2/resources/DICOM/files/{p.name}",
                                md5_of(p)) for p in sorted(src.iterdir())]


def test_unknown_project_is_an_error_naming_the_url(client: XnatClient) -> None:
    with pytest.raises(XnatError) as info:
        client.list_experiments("NOPE")
    assert "404" in str(info.value) and "/data/projects/NOPE/experiments" in str(info.value)


def test_logs_in_once_and_reauthenticates_after_expiry(client: XnatClient, emu: XnatEmulator) -> None:
    client.list_experiments("STUDYA")
    client.list_scans("XNAT_E00001")
    assert requests_to(emu, "/data/JSESSION") == 1
    emu.expire_sessions()
    assert [s.id for s in client.list_scans("XNAT_E00001")] == ["2", "5", "6"]
    assert requests_to(emu, "/data/JSESSION") == 2


def test_bad_credentials(emu: XnatEmulator) -> None:
    with XnatClient(emu.url, "alice", "wrong", retry_budget=1, backoff=0.01) as c, pytest.raises(XnatAuthError) as info:
        c.list_experiments("STUDYA")
    assert "refused the credentials of user alice" in str(info.value) and emu.url in str(info.value)


def test_from_env(emu: XnatEmulator) -> None:
    with pytest.raises(XnatAuthError, match="XNAT_USER and XNAT_PASS.*missing: XNAT_PASS"):
        XnatClient.from_env(emu.url, env={"XNAT_USER": "admin"})
    with XnatClient.from_env(emu.url, env={"XNAT_USER": "admin", "XNAT_PASS": "admin"}) as c:
        assert len(c.list_experiments("STUDYA")) == 1


def test_5xx_burst_is_retried(client: XnatClient, emu: XnatEmulator) -> None:
    client.list_experiments("STUDYA")
    emu.fail_next(3, status=503)
    assert len(client.list_scans("XNAT_E00001")) == 3
    assert requests_to(emu, "/scans?") == 4


def test_garbage_is_a_bad_response(client: XnatClient, emu: XnatEmulator) -> None:
    emu.garbage_next(1)
    with pytest.raises(XnatBadResponse) as info:
        client.list_experiments("STUDYA")
    message = str(info.value)
    assert "/data/projects/STUDYA/experiments" in message and "<!DOCTYPE html>" in message
    assert len(client.list_experiments("STUDYA")) == 1  # the next answer is fine again


@pytest.mark.parametrize("url", ["http://admin:s3cret@127.0.0.1:8080", "https://s3cret@xnat.example.org/x",
                                 "http://u:s3/cret@h", "u:s3cret@h://x"])
def test_credentials_in_the_url_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValueError) as info:
        XnatClient(url, "admin", "p4ss")
    message = str(info.value)
    assert "***@" in message and "XNAT_USER" in message
    assert "s3" not in message and "cret" not in message and "p4ss" not in message
