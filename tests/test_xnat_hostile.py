"""What XNAT lists is not trusted: hostile scan IDs never become paths (nothing outside the
session's folder is touched), a listing whose totalRecords disagrees with its rows is refused,
and a scan that vanished between the listing and the download is reported as such."""
from __future__ import annotations

from pathlib import Path

import pytest

from datman_flow.xnat import XnatBadResponse, XnatClient, download_scan, fetch_session
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import make_session, requests_to  # the fixtures client, data and emu: conftest.py

SESSION = "STUDYB_CMH_0001_01"


@pytest.fixture()
def six_scans(tmp_path: Path):
    """A session with scans 1 to 6 on an emulator, and a data folder holding another session's
    raw DICOM, every session's NIfTI and, beside it, someone else's folder."""
    root = tmp_path / "xnat"
    make_session(root, "STUDYB", SESSION, series=[(f"1.2.4.{n}", n, f"series {n}", 2) for n in range(1, 7)])
    data = tmp_path / "data"
    sentinels = [data / "raw" / "STUDYB_CMH_0002_01" / "2" / "IM0001.dcm",
                 data / "nii" / "STUDYB_CMH_0002_01" / "T1.nii.gz",
                 tmp_path / "outside" / "precious.txt"]
    for sentinel in sentinels:
        sentinel.parent.mkdir(parents=True)
        sentinel.write_text("must survive")
    with XnatEmulator(root) as emu:
        yield emu, data, sentinels


def factory(emu: XnatEmulator):
    return lambda: XnatClient(emu.url, "admin", "admin", timeout=(2, 10), retry_budget=2, backoff=0.01)


def test_hostile_scan_ids_never_become_paths(six_scans, tmp_path: Path) -> None:
    emu, data, sentinels = six_scans
    outside = str(tmp_path / "outside")
    emu.hostile_scan_ids({"1": "..", "2": "../../nii", "3": outside, "4": "a/b"})
    with factory(emu)() as client:
        scan_ids = [s.id for s in client.list_scans("XNAT_E00001")]
    assert scan_ids == ["..", "../../nii", outside, "a/b", "5", "6"]
    raw = data / "raw" / SESSION
    results = fetch_session(factory(emu), "XNAT_E00001", scan_ids, raw, workers=2)
    assert all(s.read_text() == "must survive" for s in sentinels)
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["precious.txt"]
    assert [(r.scan_id, r.status) for r in results] == [
        ("..", "failed"), ("../../nii", "failed"), (outside, "failed"), ("a/b", "failed"),
        ("5", "complete"), ("6", "complete")]
    for result in results[:4]:
        assert result.reason.startswith(f"XNAT scan ID {result.scan_id!r} cannot be used as a folder")
    assert sorted(p.name for p in raw.iterdir()) == ["5", "6"]
    assert requests_to(emu, "format=zip") == 2  # nothing was asked for the hostile ones


def test_download_scan_refuses_an_unsafe_scan_id_or_folder(six_scans) -> None:
    emu, data, sentinels = six_scans
    emu.hostile_scan_ids({"1": ".."})
    raw = data / "raw" / SESSION
    with factory(emu)() as client:
        refused = download_scan(client, "XNAT_E00001", "..", raw / "..")
        assert (refused.status, refused.files) == ("failed", [])
        assert "XNAT scan ID '..' cannot be used" in refused.reason
        elsewhere = download_scan(client, "XNAT_E00001", "5", raw / "..")  # a safe ID, an unsafe folder
        assert elsewhere.status == "failed" and "'..' cannot be used" in elsewhere.reason
    assert all(s.exists() for s in sentinels)
    assert requests_to(emu, "/files") == 0


def test_a_leftover_symlink_is_removed_as_a_link_never_followed(six_scans, tmp_path: Path) -> None:
    emu, data, sentinels = six_scans
    raw = data / "raw" / SESSION
    raw.mkdir(parents=True)
    (raw / "5").symlink_to(tmp_path / "outside")  # a scan folder (no manifest) that is a link
    (raw / ".6.partial-x").symlink_to(tmp_path / "outside")  # a crashed run's "partial folder"
    results = fetch_session(factory(emu), "XNAT_E00001", ["5", "6"], raw, workers=1)
    assert [r.status for r in results] == ["complete", "complete"]
    assert not (raw / "5").is_symlink() and (raw / "5" / ".complete.json").is_file()
    assert sorted(p.name for p in raw.iterdir()) == ["5", "6"]
    assert all(s.exists() for s in sentinels)


def test_listing_whose_total_disagrees_with_its_rows_is_refused(client: XnatClient, emu: XnatEmulator) -> None:
    emu.shorten_next_listing(drop=1)
    with pytest.raises(XnatBadResponse) as info:
        client.list_scans("XNAT_E00001")
    message = str(info.value)
    assert "/data/experiments/XNAT_E00001/scans" in message
    assert "2 rows" in message and "totalRecords 3" in message
    assert [s.id for s in client.list_scans("XNAT_E00001")] == ["2", "5", "6"]  # a whole one is fine


def test_short_file_listing_fails_the_scan_naming_both_numbers(client: XnatClient, emu: XnatEmulator,
                                                               tmp_path: Path) -> None:
    emu.shorten_next_listing(drop=1, times=2)
    result = download_scan(client, "XNAT_E00001", "5", tmp_path / "raw" / "5", attempts=2)
    assert result.status == "failed" and "39 rows" in result.reason and "totalRecords 40" in result.reason
    assert not (tmp_path / "raw" / "5").exists()
    emu.shorten_next_listing(drop=1)  # once: the next attempt gets the whole listing
    assert download_scan(client, "XNAT_E00001", "5", tmp_path / "raw" / "5").status == "complete"


@pytest.mark.parametrize("how", ["404", "empty"])
def test_scan_vanished_between_listing_and_download(emu: XnatEmulator, tmp_path: Path, how: str) -> None:
    emu.vanish_scan("5", after_listings=1, how=how)
    make = lambda: XnatClient(emu.url, "admin", "admin", retry_budget=2, backoff=0.01)  # noqa: E731
    with make() as client:
        scan_ids = [s.id for s in client.list_scans("XNAT_E00001")]
    assert scan_ids == ["2", "5", "6"]
    results = fetch_session(make, "XNAT_E00001", scan_ids, tmp_path / "raw", workers=1)
    assert [(r.scan_id, r.status) for r in results] == [("2", "complete"), ("5", "failed"), ("6", "complete")]
    assert results[1].reason.startswith("scan 5 vanished from XNAT between the listing and the download")
    assert requests_to(emu, "/scans/5/resources/DICOM/files") == 1  # not retried: gone is gone
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["2", "6"]
