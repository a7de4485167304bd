"""Nothing XNAT sends is unbounded: a listing is refused past its limit; a drip-feeding server
meets the request's deadline."""
from __future__ import annotations

import time

import pytest

from datman_flow.xnat import XnatClient, XnatDeadline, XnatOversize
from datman_flow.xnat import client as client_module
from datman_flow.xnat.emulator import XnatEmulator

# the fixtures client, data and emu: conftest.py

E = "XNAT_E00001"


def test_listing_larger_than_any_listing_is_refused(client: XnatClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_LISTING_BYTES", 4000)  # 256 MB in earnest
    assert len(client.list_files(E, "2")) == 3
    with pytest.raises(XnatOversize, match=r"announces \d+ bytes, more than the 4000 a listing may have"):
        client.list_files(E, "5")  # 40 files


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
