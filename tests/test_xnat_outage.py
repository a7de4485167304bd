"""XNAT restarting (connections refused, then 503 while the webapp starts) is waited out for the
client's retry budget, logged with how long XNAT has been gone; a longer outage fails naming it."""
from __future__ import annotations

import logging
import re
import socket
import time
from pathlib import Path

import pytest

from datman_flow.xnat import XnatClient, XnatUnavailable, fetch_session
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import requests_to  # the fixtures client, data and emu: conftest.py

E = "XNAT_E00001"


def client_for(emu: XnatEmulator, budget: float) -> XnatClient:
    return XnatClient(emu.url, "admin", "admin", timeout=(2, 10), retry_budget=budget, backoff=0.05)


@pytest.mark.parametrize("refused", [None, 0.6])  # refused throughout, or refused then 503
def test_restart_within_the_budget_is_waited_out(emu: XnatEmulator, refused: float | None,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with client_for(emu, 6) as client:
        client.list_experiments("STUDYA")
        emu.restart(1.5, refused=refused)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="datman_flow.xnat"):
            assert [s.id for s in client.list_scans(E)] == ["2", "5", "6"]
    assert 1.4 <= time.monotonic() - started < 4
    assert re.search(rf"XNAT at {re.escape(emu.url)} unavailable for \d+(\.\d)? s \(.+\); retrying until "
                     r"\d\d:\d\d:\d\d", caplog.text), caplog.text
    if refused:
        assert "(HTTP 503)" in caplog.text  # the webapp was starting: logins answered 503 too


def test_restart_longer_than_the_budget_fails_naming_the_duration(emu: XnatEmulator) -> None:
    with client_for(emu, 1.5) as client:
        client.list_experiments("STUDYA")
        emu.restart(10)
        started = time.monotonic()
        with pytest.raises(XnatUnavailable) as info:
            client.list_scans(E)
    assert 1.5 <= time.monotonic() - started < 3
    message = str(info.value)
    assert re.search(r"XNAT at \S+ unavailable for 1(\.\d)? s \(\d+ attempts; retry budget 1\.5 s\)", message)
    assert "/data/experiments/XNAT_E00001/scans" in message


def test_5xx_beyond_the_budget(client: XnatClient, emu: XnatEmulator) -> None:
    client.list_experiments("STUDYA")
    emu.fail_next(10_000, status=502)
    with pytest.raises(XnatUnavailable) as info:
        client.list_scans(E)
    assert "HTTP 502" in str(info.value) and "/data/experiments/XNAT_E00001/scans" in str(info.value)
    assert requests_to(emu, "/scans?") > 7  # the budget, not a count of attempts, decides
    emu.clear_faults()


def test_connection_refused_for_the_whole_budget() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    started = time.monotonic()
    with XnatClient(f"http://127.0.0.1:{port}", "a", "b", retry_budget=0.5, backoff=0.01) as c, \
            pytest.raises(XnatUnavailable) as info:
        c.list_experiments("STUDYA")
    assert f"127.0.0.1:{port}" in str(info.value) and "ConnectionError" in str(info.value)
    assert 0.5 <= time.monotonic() - started < 2


def test_session_fetched_across_a_restart(emu: XnatEmulator, tmp_path: Path) -> None:
    emu.restart(1.5, refused=0.7)
    results = fetch_session(lambda: client_for(emu, 6), E, ["2", "5", "6"], tmp_path / "raw", workers=2)
    assert [r.status for r in results] == ["complete"] * 3


def test_default_budget_is_a_few_minutes() -> None:
    client = XnatClient("http://127.0.0.1:9", "a", "b")
    assert client.retry.budget == XnatClient.default_retry_budget == 300
    assert (client.request_timeout, XnatClient(
        "http://127.0.0.1:9", "a", "b", retry_budget=5).retry.budget) == (600, 5)
