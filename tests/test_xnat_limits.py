"""Nothing XNAT sends is unbounded: a zip member larger than listed and a zip that never ends are
cut with the bytes on disk bounded; a drip-feeding server meets the request's and the scan's
deadlines; the session's wait for its workers has a deadline too."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from datman_flow.xnat import XnatClient, XnatDeadline, XnatOversize, download_scan, fetch_session
from datman_flow.xnat import client as client_module
from datman_flow.xnat import fetch as fetch_module
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import requests_to  # the fixtures client, data and emu: conftest.py

E = "XNAT_E00001"


class _Counting:
    def __init__(self, out) -> None:  # type: ignore[no-untyped-def]
        self.out, self.n = out, 0

    def write(self, data: bytes) -> int:
        self.n += len(data)
        return self.out.write(data)


class CountingClient(XnatClient):
    """Counts the bytes each zip download writes to its file."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.written: list[int] = []

    def download_files_zip(self, experiment_id, scan_id, out, *args, **kwargs):  # type: ignore[no-untyped-def]
        counting = _Counting(out)
        try:
            return super().download_files_zip(experiment_id, scan_id, counting, *args, **kwargs)
        finally:
            self.written.append(counting.n)


def counting_client(emu: XnatEmulator) -> CountingClient:
    return CountingClient(emu.url, "admin", "admin", timeout=(2, 10), retry_budget=2, backoff=0.01)


def listed_bytes(client: XnatClient, scan_id: str) -> int:
    return sum(f.size for f in client.list_files(E, scan_id))


def test_member_slightly_larger_than_listed_fails_the_scan(client: XnatClient, emu: XnatEmulator,
                                                           tmp_path: Path) -> None:
    emu.oversize_next_member(3000)
    dest = tmp_path / "raw" / "2"
    result = download_scan(client, E, "2", dest, attempts=1)
    size = client.list_files(E, "2")[0].size
    assert result.status == "failed"
    assert result.reason == f"after 1 attempts: member img0001.dcm exceeds its listed size of {size} bytes"
    assert not dest.exists() and list((tmp_path / "raw").iterdir()) == []


def test_member_far_larger_than_listed_is_cut_with_the_bytes_on_disk_bounded(emu: XnatEmulator,
                                                                            tmp_path: Path) -> None:
    emu.oversize_next_member(64 << 20)
    with counting_client(emu) as client:
        result = download_scan(client, E, "2", tmp_path / "raw" / "2", attempts=1)
        listed = listed_bytes(client, "2")
    assert result.status == "failed" and "exceeds" in result.reason and "cut off" in result.reason
    assert client.written[0] < listed + (2 << 20)  # the bound: listed sizes + overhead, not 64 MB
    assert list((tmp_path / "raw").iterdir()) == []


def test_endless_zip_is_cut(emu: XnatEmulator, tmp_path: Path) -> None:
    emu.endless_next_zip(times=2)
    started = time.monotonic()
    with counting_client(emu) as client:
        result = download_scan(client, E, "5", tmp_path / "raw" / "5", attempts=3)
        listed = listed_bytes(client, "5")
    assert result.status == "complete"  # the third attempt got a proper zip
    assert client.written[:2] == [client.written[0]] * 2 and client.written[0] < listed + (2 << 20)
    assert time.monotonic() - started < 10


def test_listing_larger_than_any_listing_is_refused(client: XnatClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_LISTING_BYTES", 4000)  # 256 MB in earnest
    assert len(client.list_files(E, "2")) == 3
    with pytest.raises(XnatOversize, match=r"announces \d+ bytes, more than the 4000 a listing may have"):
        client.list_files(E, "5")  # 40 files


def test_drip_fed_zip_fails_the_scan_at_its_deadline(client: XnatClient, emu: XnatEmulator, tmp_path: Path) -> None:
    emu.drip_next(0.5, kind="zip", times=5)  # one byte every half second, forever
    started = time.monotonic()
    result = download_scan(client, E, "2", tmp_path / "raw" / "2", scan_timeout=2)
    took = time.monotonic() - started
    assert result.status == "failed" and 2 <= took < 3.5
    assert "scan 2's deadline of 2 s (scan_timeout)" in result.reason
    assert requests_to(emu, "format=zip") == 1  # no attempt started after the deadline
    assert list((tmp_path / "raw").iterdir()) == []


def test_zip_dripping_after_its_headers_is_cut_while_streaming(client: XnatClient, emu: XnatEmulator,
                                                               tmp_path: Path) -> None:
    emu.drip_next(0.3, after_bytes=2000, kind="zip", times=5)  # headers and a first part at once
    started = time.monotonic()
    result = download_scan(client, E, "2", tmp_path / "raw" / "2", scan_timeout=1.5)
    assert result.status == "failed" and 1.5 <= time.monotonic() - started < 2.5
    assert "zip stream from " in result.reason and "cut off at scan 2's deadline of 1.5 s" in result.reason
    assert list((tmp_path / "raw").iterdir()) == []


def test_drip_fed_listing_meets_the_request_deadline(emu: XnatEmulator) -> None:
    with XnatClient(emu.url, "admin", "admin", request_timeout=1.5, retry_budget=5, backoff=0.01) as client:
        client.list_experiments("STUDYA")  # logged in
        emu.drip_next(0.3, kind="json")  # status line and headers dripped too
        started = time.monotonic()
        with pytest.raises(XnatDeadline) as info:
            client.list_scans(E)
        took = time.monotonic() - started
        assert [s.id for s in client.list_scans(E)] == ["2", "5", "6"]  # the client is fine afterwards
    assert 1.5 <= took < 2.5
    assert "/data/experiments/XNAT_E00001/scans" in str(info.value)
    assert "the request deadline of 1.5 s (request_timeout)" in str(info.value)


def test_one_drip_fed_scan_does_not_hold_up_the_session(emu: XnatEmulator, tmp_path: Path) -> None:
    emu.drip_next(0.5, kind="zip")  # the first zip: scan 2's
    make = lambda: XnatClient(emu.url, "admin", "admin", retry_budget=2, backoff=0.01)  # noqa: E731
    started = time.monotonic()
    results = fetch_session(make, E, ["2", "5", "6"], tmp_path / "raw", workers=1, scan_timeout=1.5)
    assert [(r.scan_id, r.status) for r in results] == [("2", "failed"), ("5", "complete"), ("6", "complete")]
    assert "deadline" in results[0].reason and time.monotonic() - started < 5


def test_waiting_for_the_workers_has_a_deadline(emu: XnatEmulator, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(fetch_module, "download_scan", lambda *args, **kwargs: release.wait(60))
    monkeypatch.setattr(fetch_module, "POOL_GRACE", 0.5)
    make = lambda: XnatClient(emu.url, "admin", "admin", retry_budget=2, backoff=0.01)  # noqa: E731
    started = time.monotonic()
    try:
        with pytest.raises(XnatDeadline, match="did not finish within"):
            fetch_session(make, E, ["2", "5"], tmp_path / "raw", workers=2, scan_timeout=0.5)
        assert time.monotonic() - started < 3
    finally:
        release.set()
