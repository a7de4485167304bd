"""The emulator's fault modes for issue 9 (hostile IDs, digests off, short listings, vanished
scans, oversized and endless zips, drip-feeding, restarts), checked over raw HTTP."""
from __future__ import annotations

import io
import socket
import time
import zipfile
from pathlib import Path

import pytest
import requests

from datman_flow.xnat.emulator import XnatEmulator

AUTH = ("admin", "admin")
E = "/data/experiments/XNAT_E00001"  # the session of conftest's `data` fixture: scans 2, 5, 6


def get(emu: XnatEmulator, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    kwargs.setdefault("timeout", 10)
    return requests.get(emu.url + path, **kwargs)


def result_set(emu: XnatEmulator, path: str) -> dict:
    response = get(emu, path)
    assert response.status_code == 200, response.text
    return response.json()["ResultSet"]


def test_hostile_scan_ids_are_listed_and_served(emu: XnatEmulator) -> None:
    emu.hostile_scan_ids({"2": "..", "5": "a/b", "6": "/abs/path"})
    assert [r["ID"] for r in result_set(emu, f"{E}/scans")["Result"]] == ["..", "a/b", "/abs/path"]
    files = result_set(emu, f"{E}/scans/a%2Fb/resources/DICOM/files")["Result"]
    assert len(files) == 40
    emu.clear_faults()
    assert [r["ID"] for r in result_set(emu, f"{E}/scans")["Result"]] == ["2", "5", "6"]


def test_checksums_disabled_list_empty_digests(emu: XnatEmulator) -> None:
    emu.disable_checksums()
    assert {f["digest"] for f in result_set(emu, f"{E}/scans/2/resources/DICOM/files")["Result"]} == {""}


def test_short_listing_keeps_the_full_total(emu: XnatEmulator) -> None:
    emu.shorten_next_listing(drop=1)
    short = result_set(emu, f"{E}/scans")
    assert (short["totalRecords"], len(short["Result"])) == ("3", 2)
    again = result_set(emu, f"{E}/scans")
    assert (again["totalRecords"], len(again["Result"])) == ("3", 3)


@pytest.mark.parametrize("how", ["404", "empty"])
def test_vanishing_scan(emu: XnatEmulator, how: str) -> None:
    emu.vanish_scan("5", after_listings=1, how=how)
    assert [r["ID"] for r in result_set(emu, f"{E}/scans")["Result"]] == ["2", "5", "6"]
    assert [r["ID"] for r in result_set(emu, f"{E}/scans")["Result"]] == ["2", "6"]
    files = get(emu, f"{E}/scans/5/resources/DICOM/files")
    if how == "404":
        assert files.status_code == 404
    else:
        assert files.status_code == 200 and files.json()["ResultSet"]["Result"] == []


def test_oversized_member_and_endless_zip(emu: XnatEmulator) -> None:
    zip_path = f"{E}/scans/2/resources/DICOM/files?format=zip"
    emu.oversize_next_member(5000)
    with zipfile.ZipFile(io.BytesIO(get(emu, zip_path).content)) as zf:
        first, *rest = zf.infolist()
        assert zf.testzip() is None
        plain = zipfile.ZipFile(io.BytesIO(get(emu, zip_path).content)).infolist()
        assert first.file_size == plain[0].file_size + 5000 and [i.file_size for i in rest] == [
            i.file_size for i in plain[1:]]
    emu.endless_next_zip()
    received = 0
    with get(emu, zip_path, stream=True) as response:
        for chunk in response.iter_content(1 << 16):
            received += len(chunk)
            if received > 20 << 20:
                break
    assert received > 20 << 20  # still coming: the client has to hang up
    assert zipfile.ZipFile(io.BytesIO(get(emu, zip_path).content)).testzip() is None  # next one is fine


def test_drip_sends_one_byte_at_a_time(emu: XnatEmulator) -> None:
    emu.drip_next(0.05, seconds=0.5, kind="zip")
    assert get(emu, f"{E}/scans").status_code == 200  # not a zip: not dripped
    emu.drip_next(0.05, seconds=0.5, kind="json")
    started = time.monotonic()
    rs = result_set(emu, f"{E}/scans")
    took = time.monotonic() - started
    assert len(rs["Result"]) == 3 and 0.45 < took < 3
    emu.clear_faults()


def test_drip_after_the_first_bytes(emu: XnatEmulator) -> None:
    emu.drip_next(0.05, seconds=0.5, after_bytes=300, kind="json")
    started = time.monotonic()
    with get(emu, f"{E}/scans", stream=True) as response:
        assert response.status_code == 200 and time.monotonic() - started < 0.3  # headers at once
        body = response.content
    assert len(body) > 300 and 0.45 < time.monotonic() - started < 3


def test_drip_forever_ends_when_the_client_leaves(emu: XnatEmulator) -> None:
    emu.drip_next(0.02, kind="zip")
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(emu, f"{E}/scans/2/resources/DICOM/files?format=zip", timeout=(2, 0.01))
    assert get(emu, "/data/projects").status_code == 200


def connection_refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) != 0


def test_restart_refuses_then_answers_503_then_recovers(emu: XnatEmulator) -> None:
    sid = requests.post(emu.url + "/data/JSESSION", auth=AUTH, timeout=10).text
    emu.restart(1.5, refused=0.7)
    assert connection_refused(emu.url)
    time.sleep(0.9)
    starting = requests.post(emu.url + "/data/JSESSION", auth=AUTH, timeout=10)
    assert starting.status_code == 503 and "Tomcat" in starting.text
    time.sleep(0.8)
    assert get(emu, "/data/projects", auth=None, cookies={"JSESSIONID": sid}).status_code == 401  # sessions lost
    assert get(emu, "/data/projects").status_code == 200


def test_stop_during_a_restart_stays_stopped(data: Path) -> None:
    emulator = XnatEmulator(data).start()
    url = emulator.url
    emulator.restart(0.3)
    emulator.stop()
    time.sleep(0.5)
    assert connection_refused(url)
