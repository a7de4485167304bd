"""How each scan was verified is recorded (MD5 against XNAT's digests, or size and count only
when XNAT lists none), warned about, and refusable with require_digest."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from datman_flow.xnat import XnatClient, download_scan, fetch_session
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import requests_to  # the fixtures client, data and emu: conftest.py

REQUIRED = "MD5 digests are required (require_digest) but XNAT lists none for"


def manifest(dest: Path) -> dict:
    return json.loads((dest / ".complete.json").read_text())


def test_scan_with_digests_is_verified_by_md5(client: XnatClient, tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "2"
    result = download_scan(client, "XNAT_E00001", "2", dest, require_digest=True)
    assert (result.status, result.verified) == ("complete", "md5")
    assert manifest(dest)["verified"] == "md5"
    again = download_scan(client, "XNAT_E00001", "2", dest, require_digest=True)
    assert (again.status, again.n_bytes, again.verified) == ("complete", 0, "md5")


def test_listing_without_digests_is_recorded_and_warned(client: XnatClient, emu: XnatEmulator, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    emu.disable_checksums()
    dest = tmp_path / "raw" / "2"
    with caplog.at_level(logging.WARNING, logger="datman_flow.xnat"):
        result = download_scan(client, "XNAT_E00001", "2", dest)
    assert (result.status, result.verified) == ("complete", "size+count only")
    assert manifest(dest)["verified"] == "size+count only"
    assert "scan 2: XNAT lists no MD5 digest for 3 of 3 files: verified by size and count only" in caplog.text


def test_without_digests_a_corrupted_transfer_goes_unnoticed(client: XnatClient, emu: XnatEmulator,
                                                             tmp_path: Path) -> None:
    """Why `verified` is recorded and `require_digest` exists: sizes and counts cannot see flipped bytes."""
    emu.disable_checksums()
    emu.corrupt_next_file()
    result = download_scan(client, "XNAT_E00001", "2", tmp_path / "raw" / "2")
    assert (result.status, result.verified) == ("complete", "size+count only")


def test_require_digest_refuses_a_listing_without_digests(client: XnatClient, emu: XnatEmulator,
                                                          tmp_path: Path) -> None:
    emu.disable_checksums()
    dest = tmp_path / "raw" / "2"
    result = download_scan(client, "XNAT_E00001", "2", dest, require_digest=True)
    assert (result.status, result.verified, result.files) == ("failed", None, [])
    assert result.reason == f"{REQUIRED} 3 of 3 files of scan 2"
    assert not dest.exists() and requests_to(emu, "format=zip") == 0
    # a copy downloaded earlier without digests is not accepted either once they are required
    assert download_scan(client, "XNAT_E00001", "2", dest).verified == "size+count only"
    assert download_scan(client, "XNAT_E00001", "2", dest, require_digest=True).status == "failed"


def test_fetch_session_passes_require_digest(emu: XnatEmulator, tmp_path: Path) -> None:
    emu.disable_checksums()
    make = lambda: XnatClient(emu.url, "admin", "admin", retry_budget=2, backoff=0.01)  # noqa: E731
    results = fetch_session(make, "XNAT_E00001", ["2", "5"], tmp_path / "raw", require_digest=True)
    assert [(r.status, r.reason.startswith(REQUIRED)) for r in results] == [("failed", True)] * 2
    results = fetch_session(make, "XNAT_E00001", ["2", "5"], tmp_path / "raw")
    assert [(r.status, r.verified) for r in results] == [("complete", "size+count only")] * 2
