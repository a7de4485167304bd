"""What XNAT lists is not trusted: a listing whose totalRecords disagrees with its rows is refused."""
from __future__ import annotations

from pathlib import Path

import pytest

from datman_flow.xnat import XnatBadResponse, XnatClient, download_scan
from datman_flow.xnat.emulator import XnatEmulator

# the fixtures client, data and emu: conftest.py


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
