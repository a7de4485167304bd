"""Verified scan downloads and session fetches (cut zips, MD5 checks, parallel workers),
against the emulator over real HTTP."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from datman_flow.xnat import RemoteFile, Scan, XnatAuthError, XnatClient, XnatTruncated, download_scan, fetch_session
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import LABEL, md5_of, requests_to  # the fixtures client, data and emu: conftest.py


def zips(emu: XnatEmulator) -> int:
    return requests_to(emu, "format=zip")


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
        client = XnatClient(emu.url, user, "admin", timeout=(2, 10), retry_budget=2, backoff=0.01)
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

    def download_files_zip(self, experiment_id, scan_id, out, *args, **kwargs):  # type: ignore[no-untyped-def]
        if scan_id == self.failing:
            raise XnatTruncated(f"zip stream of scan {scan_id} ended early (test)")
        return super().download_files_zip(experiment_id, scan_id, out, *args, **kwargs)


def test_parallel_fetch_one_failing_scan_does_not_stop_the_others(emu: XnatEmulator, data: Path,
                                                                  tmp_path: Path) -> None:
    def make() -> XnatClient:
        return ScanFailingClient(emu.url, "admin", "admin", timeout=(2, 10), retry_budget=1, backoff=0.01)

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

    def list_files(self, experiment_id: str, scan_id: str, **kwargs) -> list[RemoteFile]:
        return self.listing

    def list_scans(self, experiment_id: str, **kwargs) -> list[Scan]:
        return [Scan("1", "T1", "T1", "usable", "xnat:mrScanData")]

    def download_files_zip(self, experiment_id: str, scan_id: str, out, **kwargs) -> int:
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
