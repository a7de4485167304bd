"""The XNAT client and the verified download, against the emulator over real HTTP."""
from __future__ import annotations

import hashlib
import io
import json
import socket
import time
import zipfile
from pathlib import Path

import pytest
from xnat_helpers import make_session, md5_of

from datman_flow.xnat import (Experiment, RemoteFile, Scan, XnatAuthError, XnatBadResponse,
                              XnatClient, XnatError, XnatTruncated, XnatUnavailable, download_scan,
                              fetch_session)
from datman_flow.xnat.emulator import XnatEmulator

LABEL = "STUDYA_CMH_0001_01"


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "xnat"
    make_session(root, "STUDYA", LABEL, series=[
        ("1.2.3.2", 2, "T1w MPRAGE", 3), ("1.2.3.5", 5, "rest BOLD", 40), ("1.2.3.6", 6, "fmap", 2)])
    return root


@pytest.fixture()
def emu(data: Path):
    with XnatEmulator(data) as server:
        yield server


@pytest.fixture()
def client(emu: XnatEmulator):
    with XnatClient(emu.url, "admin", "admin", timeout=(2, 10), retries=4, backoff=0.01) as c:
        yield c


def requests_to(emu: XnatEmulator, fragment: str) -> int:
    return sum(fragment in path for _, path in emu.request_log)


def zips(emu: XnatEmulator) -> int:
    return requests_to(emu, "format=zip")


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
    with XnatClient(emu.url, "alice", "wrong", backoff=0.01) as c, pytest.raises(XnatAuthError) as info:
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


def test_failures_beyond_retries_make_xnat_unavailable(client: XnatClient, emu: XnatEmulator) -> None:
    client.list_experiments("STUDYA")
    emu.fail_next(10, status=502)
    with pytest.raises(XnatUnavailable) as info:
        client.list_scans("XNAT_E00001")
    assert "/data/experiments/XNAT_E00001/scans" in str(info.value) and "HTTP 502" in str(info.value)
    assert requests_to(emu, "/scans?") == 5  # 1 + retries


def test_garbage_is_a_bad_response(client: XnatClient, emu: XnatEmulator) -> None:
    emu.garbage_next(1)
    with pytest.raises(XnatBadResponse) as info:
        client.list_experiments("STUDYA")
    message = str(info.value)
    assert "/data/projects/STUDYA/experiments" in message and "<!DOCTYPE html>" in message
    assert len(client.list_experiments("STUDYA")) == 1  # the next answer is fine again


def test_connection_refused_is_unavailable_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    started = time.monotonic()
    with XnatClient(f"http://127.0.0.1:{port}", "a", "b", retries=2, backoff=0.01) as c, \
            pytest.raises(XnatUnavailable) as info:
        c.list_experiments("STUDYA")
    assert f"127.0.0.1:{port}" in str(info.value) and "3 attempts" in str(info.value)
    assert time.monotonic() - started < 5


def assert_complete(result, dest: Path, source: Path) -> None:
    assert result.status == "complete", result.reason
    names = sorted(p.name for p in source.iterdir())
    assert result.files == names
    assert sorted(p.name for p in dest.iterdir()) == sorted(names + [".complete.json"])
    for name in names:
        assert (dest / name).read_bytes() == (source / name).read_bytes()
    manifest = json.loads((dest / ".complete.json").read_text())
    assert (manifest["experiment_id"], manifest["scan_id"]) == ("XNAT_E00001", result.scan_id)
    assert {f["name"]: f["md5"] for f in manifest["files"]} == {n: md5_of(source / n) for n in names}


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial-" in p.name]


def test_download_complete_and_idempotent(client: XnatClient, emu: XnatEmulator, data: Path,
                                          tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "5"
    result = download_scan(client, "XNAT_E00001", "5", dest)
    assert_complete(result, dest, data / "STUDYA" / LABEL / "s1_2_3_5")
    assert result.n_bytes > 0 and zips(emu) == 1
    stamp = (dest / "img0001.dcm").stat().st_mtime_ns
    again = download_scan(client, "XNAT_E00001", "5", dest)
    assert again.status == "complete" and again.files == result.files and again.n_bytes == 0
    assert zips(emu) == 1 and (dest / "img0001.dcm").stat().st_mtime_ns == stamp
    assert leftovers(dest.parent) == []


def test_incomplete_dest_from_earlier_run_is_replaced(client: XnatClient, data: Path, tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "2"
    dest.mkdir(parents=True)
    (dest / "img0001.dcm").write_bytes(b"half a file")  # no manifest: an interrupted old run
    (tmp_path / "raw" / ".2.partial-abc").mkdir()  # a crashed run's temporary folder
    assert_complete(download_scan(client, "XNAT_E00001", "2", dest), dest, data / "STUDYA" / LABEL / "s1_2_3_2")
    assert leftovers(dest.parent) == []


def test_cut_zip_is_retried_to_completion(client: XnatClient, emu: XnatEmulator, data: Path,
                                          tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "5"
    emu.cut_next_zip(3000)
    result = download_scan(client, "XNAT_E00001", "5", dest)
    assert_complete(result, dest, data / "STUDYA" / LABEL / "s1_2_3_5")
    assert zips(emu) == 2 and leftovers(dest.parent) == []


def test_cut_on_every_attempt_fails_and_leaves_nothing(client: XnatClient, emu: XnatEmulator,
                                                       tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "5"
    emu.cut_next_zip(3000, times=3)
    result = download_scan(client, "XNAT_E00001", "5", dest, attempts=3)
    assert result.status == "failed" and result.files == []
    assert result.reason.startswith("after 3 attempts: zip stream from ")
    assert "ended early" in result.reason
    assert zips(emu) == 3
    assert not dest.exists() and leftovers(dest.parent) == []


def test_corrupted_member_is_detected_and_retried(client: XnatClient, emu: XnatEmulator, data: Path,
                                                  tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dest = tmp_path / "raw" / "2"
    emu.corrupt_next_file()
    result = download_scan(client, "XNAT_E00001", "2", dest)
    assert_complete(result, dest, data / "STUDYA" / LABEL / "s1_2_3_2")
    assert zips(emu) == 2
    assert "MD5 mismatch for img0001.dcm: expected " + md5_of(data / "STUDYA" / LABEL / "s1_2_3_2" /
                                                             "img0001.dcm") in caplog.text


def test_corruption_every_time_fails_with_the_md5_reason(client: XnatClient, emu: XnatEmulator,
                                                         tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "2"
    emu.corrupt_next_file(2)
    result = download_scan(client, "XNAT_E00001", "2", dest, attempts=2)
    assert result.status == "failed"
    assert result.reason.startswith("after 2 attempts: MD5 mismatch for img0001.dcm: expected ")
    assert not dest.exists() and leftovers(dest.parent) == []


def factory(emu: XnatEmulator, made: list | None = None, user: str = "admin"):
    """A client factory for fetch_session; records the clients it made."""
    def make() -> XnatClient:
        client = XnatClient(emu.url, user, "admin", timeout=(2, 10), retries=4, backoff=0.01)
        if made is not None:
            made.append(client)
        return client
    return make


def test_fetch_session_goes_on_after_a_failing_scan(emu: XnatEmulator, data: Path, tmp_path: Path) -> None:
    emu.cut_next_zip(500, times=3)  # the first scan (2) fails on all 3 attempts
    results = fetch_session(factory(emu), "XNAT_E00001", ["2", "5", "6"], tmp_path / "raw", workers=1)
    assert [(r.scan_id, r.status) for r in results] == [("2", "failed"), ("5", "complete"), ("6", "complete")]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["5", "6"]
    assert_complete(results[2], tmp_path / "raw" / "6", data / "STUDYA" / LABEL / "s1_2_3_6")


def test_parallel_fetch_returns_every_scan_complete_in_order(emu: XnatEmulator, data: Path,
                                                             tmp_path: Path) -> None:
    made: list[XnatClient] = []
    order = ["6", "2", "5"]
    results = fetch_session(factory(emu, made), "XNAT_E00001", order, tmp_path / "raw", workers=3)
    assert [r.scan_id for r in results] == order
    folders = {"2": "s1_2_3_2", "5": "s1_2_3_5", "6": "s1_2_3_6"}
    for result in results:
        assert_complete(result, tmp_path / "raw" / result.scan_id, data / "STUDYA" / LABEL / folders[result.scan_id])
    assert len(made) == 3 and len({id(c) for c in made}) == 3  # one client per worker
    assert requests_to(emu, "/data/JSESSION") == 6  # each logged in, and out again at the end
    assert zips(emu) == 3 and leftovers(tmp_path / "raw") == []
    again = fetch_session(factory(emu), "XNAT_E00001", order, tmp_path / "raw", workers=2)
    assert [(r.scan_id, r.status, r.n_bytes) for r in again] == [(s, "complete", 0) for s in order]
    assert zips(emu) == 3  # already complete: nothing downloaded twice


class ScanFailingClient(XnatClient):
    """Every zip of one scan breaks off, whichever worker downloads it."""

    failing = "5"

    def download_files_zip(self, experiment_id, scan_id, out, resource="DICOM"):  # type: ignore[no-untyped-def]
        if scan_id == self.failing:
            raise XnatTruncated(f"zip stream of scan {scan_id} ended early (test)")
        return super().download_files_zip(experiment_id, scan_id, out, resource)


def test_parallel_fetch_one_failing_scan_does_not_stop_the_others(emu: XnatEmulator, data: Path,
                                                                  tmp_path: Path) -> None:
    def make() -> XnatClient:
        return ScanFailingClient(emu.url, "admin", "admin", timeout=(2, 10), retries=1, backoff=0.01)

    results = fetch_session(make, "XNAT_E00001", ["2", "5", "6"], tmp_path / "raw", workers=3)
    assert [(r.scan_id, r.status) for r in results] == [("2", "complete"), ("5", "failed"), ("6", "complete")]
    assert results[1].reason == "after 3 attempts: zip stream of scan 5 ended early (test)"
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["2", "6"]
    assert_complete(results[0], tmp_path / "raw" / "2", data / "STUDYA" / LABEL / "s1_2_3_2")


def test_parallel_fetch_refused_credentials_raise(emu: XnatEmulator, tmp_path: Path) -> None:
    with pytest.raises(XnatAuthError):
        fetch_session(factory(emu, user="mallory"), "XNAT_E00001", ["2", "5", "6"], tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []
    assert zips(emu) == 0


def test_fetch_session_arguments(emu: XnatEmulator, tmp_path: Path) -> None:
    assert fetch_session(factory(emu), "XNAT_E00001", [], tmp_path / "raw") == []
    with pytest.raises(ValueError, match="more than once: 5"):
        fetch_session(factory(emu), "XNAT_E00001", ["5", "2", "5"], tmp_path / "raw")
    with pytest.raises(ValueError, match="workers"):
        fetch_session(factory(emu), "XNAT_E00001", ["5"], tmp_path / "raw", workers=0)


class FakeClient:
    """A listing and a zip that disagree, to check the verification messages."""

    def __init__(self, listing: list[RemoteFile], members: dict[str, bytes]) -> None:
        self.listing, self.members = listing, members

    def list_files(self, experiment_id: str, scan_id: str) -> list[RemoteFile]:
        return self.listing

    def download_files_zip(self, experiment_id: str, scan_id: str, out) -> int:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for name, content in self.members.items():
                zf.writestr(f"S/scans/1-x/resources/DICOM/files/{name}", content)
        out.write(buffer.getvalue())
        return len(buffer.getvalue())


def remote(name: str, content: bytes) -> RemoteFile:
    return RemoteFile(name, len(content), f"/files/{name}", hashlib.md5(content).hexdigest())


@pytest.mark.parametrize(("listing", "members", "reason"), [
    (["a", "b", "c"], ["a"], "after 3 attempts: 2 of 3 files missing: b, c"),
    (["a"], ["a", "zz"], "after 3 attempts: 1 unexpected files in the zip: zz"),
    ([], [], "XNAT lists no DICOM files for scan 1"),
])
def test_verification_messages(tmp_path: Path, listing: list[str], members: list[str], reason: str) -> None:
    fake = FakeClient([remote(n, n.encode()) for n in listing], {n: n.encode() for n in members})
    result = download_scan(fake, "E1", "1", tmp_path / "1")  # type: ignore[arg-type]
    assert (result.status, result.reason) == ("failed", reason)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_is_reported(tmp_path: Path) -> None:
    fake = FakeClient([RemoteFile("a", 99, "/a", None)], {"a": b"short"})
    result = download_scan(fake, "E1", "1", tmp_path / "1", attempts=1)  # type: ignore[arg-type]
    assert result.reason == "after 1 attempts: size mismatch for a: expected 99 bytes, got 5"
