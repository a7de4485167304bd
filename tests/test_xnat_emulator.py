"""The XNAT emulator over real HTTP on 127.0.0.1."""
from __future__ import annotations

import hashlib
import io
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests

from datman_flow.xnat.emulator import XnatEmulator
from datman_flow.xnat.emulator import index as emulator_index
from datman_flow.xnat.emulator.dicom_header import read_header
from datman_flow.xnat.emulator.index import EmulatorIndex

from xnat_helpers import make_session, md5_of, write_series

AUTH = ("admin", "admin")


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "xnat"
    make_session(root, "STUDYA", "STUDYA_CMH_0001_01")
    # a second session: a series-number collision, non-DICOM files, a nested duplicate basename
    folder = root / "STUDYA" / "STUDYA_CMH_0002_01"
    write_series(folder / "a", series_uid="1.2.9.1", series_number=7, description="DTI 60", n_files=2)
    write_series(folder / "b", series_uid="1.2.9.2", series_number=7, description="DTI 60", n_files=2)
    write_series(folder / "c" / "x", series_uid="1.2.9.3", series_number=3, description="T2", n_files=1)
    write_series(folder / "c" / "y", series_uid="1.2.9.3", series_number=3, description="T2", n_files=2)
    (folder / "README.txt").write_text("not DICOM\n")
    (folder / "a" / "brain.nii").write_bytes(b"\x5c\x01\x00\x00" + bytes(400))
    (folder / "b" / "junk.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 20)
    (root / "OTHER").mkdir()
    return root


@pytest.fixture()
def emu(data: Path):
    with XnatEmulator(data) as server:
        yield server


def get(emu: XnatEmulator, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    return requests.get(emu.url + path, timeout=10, **kwargs)


def rows(emu: XnatEmulator, path: str) -> list[dict]:
    response = get(emu, path)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    result_set = response.json()["ResultSet"]
    assert result_set["totalRecords"] == str(len(result_set["Result"]))
    for row in result_set["Result"]:
        assert all(isinstance(v, str) for v in row.values()), row
    return result_set["Result"]


@pytest.mark.parametrize("prefix", ["/data", "/REST", "/data/archive"])
def test_url_shapes_under_every_prefix(emu: XnatEmulator, data: Path, prefix: str) -> None:
    assert [p["ID"] for p in rows(emu, f"{prefix}/projects")] == ["OTHER", "STUDYA"]
    exps = rows(emu, f"{prefix}/projects/STUDYA/experiments?format=json")
    assert [(e["ID"], e["label"]) for e in exps] == [
        ("XNAT_E00001", "STUDYA_CMH_0001_01"), ("XNAT_E00002", "STUDYA_CMH_0002_01")]
    first = exps[0]
    assert first["project"] == "STUDYA" and first["date"] == "2024-01-02"
    assert first["xsiType"] == "xnat:mrSessionData" and first["URI"] == "/data/experiments/XNAT_E00001"
    datetime.strptime(first["insert_date"], "%Y-%m-%d %H:%M:%S.%f")  # YYYY-MM-DD HH:MM:SS.mmm
    assert len(first["insert_date"]) == 23
    assert rows(emu, f"{prefix}/experiments?project=STUDYA") == exps
    scans = rows(emu, f"{prefix}/experiments/XNAT_E00001/scans")
    assert [(s["ID"], s["type"], s["series_description"], s["quality"], s["xsiType"]) for s in scans] == [
        ("2", "T1w MPRAGE", "T1w MPRAGE", "usable", "xnat:mrScanData"),
        ("5", "rest BOLD", "rest BOLD", "usable", "xnat:mrScanData")]
    assert rows(emu, f"{prefix}/projects/STUDYA/experiments/STUDYA_CMH_0001_01/scans") == scans
    (res,) = rows(emu, f"{prefix}/experiments/XNAT_E00001/scans/5/resources")
    assert res["label"] == "DICOM" and res["format"] == "DICOM" and res["file_count"] == "4"
    files = rows(emu, f"{prefix}/experiments/XNAT_E00001/scans/5/resources/DICOM/files")
    assert [f["Name"] for f in files] == ["img0001.dcm", "img0002.dcm", "img0003.dcm", "img0004.dcm"]
    assert int(res["file_size"]) == sum(int(f["Size"]) for f in files)
    src = data / "STUDYA" / "STUDYA_CMH_0001_01" / "s1_2_3_5"
    for f in files:
        assert f["URI"] == f"/data/experiments/XNAT_E00001/scans/5/resources/DICOM/files/{f['Name']}"
        assert f["Size"] == str((src / f["Name"]).stat().st_size)
        assert f["digest"] == md5_of(src / f["Name"])
        assert (f["collection"], f["file_format"], f["file_content"], f["cat_ID"]) == ("DICOM", "DICOM", "", "")
    one = get(emu, f"{prefix}/experiments/XNAT_E00001/scans/5/resources/DICOM/files/img0002.dcm")
    assert one.status_code == 200
    assert one.headers["Content-Length"] == str(len(one.content))
    assert one.content == (src / "img0002.dcm").read_bytes()


def test_unknown_things_are_404(emu: XnatEmulator) -> None:
    for path in ["/data/projects/NOPE/experiments", "/data/experiments/XNAT_E09999/scans",
                 "/data/experiments/XNAT_E00001/scans/99/resources/DICOM/files",
                 "/data/experiments/XNAT_E00001/scans/5/resources/DICOM/files/nope.dcm",
                 "/data/projects/STUDYA/experiments/NO_SUCH_LABEL/scans", "/elsewhere"]:
        assert get(emu, path).status_code == 404, path


def test_auth_required_and_bad_credentials_refused(emu: XnatEmulator) -> None:
    for auth in [None, ("admin", "wrong"), ("someone", "admin")]:
        response = requests.get(emu.url + "/data/projects", auth=auth, timeout=10)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'
    assert requests.post(emu.url + "/data/JSESSION", auth=("admin", "bad"), timeout=10).status_code == 401


def test_jsession_flow(emu: XnatEmulator) -> None:
    with requests.Session() as s:
        login = s.post(emu.url + "/data/JSESSION", auth=AUTH, timeout=10)
        assert login.status_code == 200
        assert login.text == s.cookies["JSESSIONID"] and len(login.text) >= 16
        assert s.get(emu.url + "/data/projects", timeout=10).status_code == 200  # cookie only
        assert s.delete(emu.url + "/data/JSESSION", timeout=10).status_code == 200
        assert s.get(emu.url + "/data/projects", timeout=10).status_code == 401
        s.get(emu.url + "/REST/JSESSION", auth=AUTH, timeout=10)  # GET works too
        assert s.get(emu.url + "/data/projects", timeout=10).status_code == 200
        emu.expire_sessions()
        assert s.get(emu.url + "/data/projects", timeout=10).status_code == 401


def test_non_dicom_ignored_collisions_and_duplicate_names(emu: XnatEmulator) -> None:
    scans = rows(emu, "/data/experiments/XNAT_E00002/scans")
    assert [s["ID"] for s in scans] == ["3", "7", "7-2"]  # 1.2.9.1 < 1.2.9.2 keeps "7"
    names = {s["ID"]: [f["Name"] for f in rows(emu, f"/data/experiments/XNAT_E00002/scans/{s['ID']}"
                                                   "/resources/DICOM/files")] for s in scans}
    assert names["7"] == ["img0001.dcm", "img0002.dcm"]  # brain.nii ignored
    assert names["7-2"] == ["img0001.dcm", "img0002.dcm"]  # junk.dcm ignored
    assert names["3"] == ["c_x_img0001.dcm", "c_y_img0001.dcm", "img0002.dcm"]
    got = get(emu, "/data/experiments/XNAT_E00002/scans/3/resources/DICOM/files/c_y_img0001.dcm")
    assert got.status_code == 200 and got.content[128:132] == b"DICM"


def test_new_session_appears_with_later_insert_date(emu: XnatEmulator, data: Path) -> None:
    before = rows(emu, "/data/projects/STUDYA/experiments")
    assert len(before) == 2
    time.sleep(0.01)
    make_session(data, "STUDYA", "STUDYA_CMH_0003_01")
    after = rows(emu, "/data/projects/STUDYA/experiments")
    assert after[:2] == before  # IDs and insert dates of known sessions are stable
    new = after[2]
    assert (new["ID"], new["label"]) == ("XNAT_E00003", "STUDYA_CMH_0003_01")
    assert new["insert_date"] > max(e["insert_date"] for e in before)
    # files added to a known session show up too
    write_series(data / "STUDYA" / "STUDYA_CMH_0003_01" / "late", series_uid="1.2.3.8",
                 series_number=8, description="fmap", n_files=1)
    assert [s["ID"] for s in rows(emu, "/data/experiments/XNAT_E00003/scans")] == ["2", "5", "8"]


def test_zip_is_streamed_chunked_and_complete(emu: XnatEmulator, data: Path) -> None:
    response = get(emu, "/data/experiments/XNAT_E00001/scans/5/resources/DICOM/files?format=zip")
    assert response.status_code == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.headers
    src = data / "STUDYA" / "STUDYA_CMH_0001_01" / "s1_2_3_5"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        assert zf.testzip() is None
        prefix = "STUDYA_CMH_0001_01/scans/5-rest_BOLD/resources/DICOM/files/"
        assert zf.namelist() == [prefix + f"img{i:04d}.dcm" for i in range(1, 5)]
        for name in zf.namelist():
            assert zf.read(name) == (src / name.rsplit("/", 1)[1]).read_bytes()
    everything = get(emu, "/data/experiments/XNAT_E00001/scans/ALL/files?format=zip")
    with zipfile.ZipFile(io.BytesIO(everything.content)) as zf:
        assert len(zf.namelist()) == 7


def test_fault_injection(emu: XnatEmulator) -> None:
    path = "/data/experiments/XNAT_E00001/scans/5/resources/DICOM/files"
    emu.fail_next(2, status=502)
    assert requests.post(emu.url + "/data/JSESSION", auth=AUTH, timeout=10).status_code == 200
    assert [get(emu, "/data/projects").status_code for _ in range(3)] == [502, 502, 200]
    emu.garbage_next(1)
    garbage = get(emu, path)
    assert garbage.status_code == 200 and garbage.text.lstrip().startswith("<!DOCTYPE html>")
    assert get(emu, path).json()["ResultSet"]["Result"]
    listing = {f["Name"]: f["digest"] for f in get(emu, path).json()["ResultSet"]["Result"]}
    emu.corrupt_next_file()
    with zipfile.ZipFile(io.BytesIO(get(emu, path + "?format=zip").content)) as zf:
        bad = [n for n in zf.namelist() if hashlib.md5(zf.read(n)).hexdigest() != listing[n.rsplit("/", 1)[1]]]
    assert len(bad) == 1
    emu.cut_next_zip(100)
    emu.cut_next_zip(10**9)  # beyond the end: every byte arrives but the stream is not terminated
    for _ in range(2):
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            get(emu, path + "?format=zip")
    assert zipfile.ZipFile(io.BytesIO(get(emu, path + "?format=zip").content)).testzip() is None


def test_real_ge_session_with_readme_files(real_dicom, tmp_path: Path) -> None:
    """Real GE data: extension-less names, README files mixed in, 150 files per series."""
    root = tmp_path / "xnat"
    (root / "NIH").mkdir(parents=True)
    (root / "NIH" / "GE_01").symlink_to(real_dicom("ge_siemens_nih") / "In" / "20180918GE")
    with XnatEmulator(root) as server:
        (exp,) = rows(server, "/data/projects/NIH/experiments")
        assert exp["date"] == "2018-09-18"
        scans = rows(server, f"/data/experiments/{exp['ID']}/scans")
        assert [s["ID"] for s in scans] == ["4", "5", "6", "7"]
        for scan in scans:
            files = rows(server, f"/data/experiments/{exp['ID']}/scans/{scan['ID']}/resources/DICOM/files")
            assert len(files) == 150 and not any(f["Name"].endswith(".txt") for f in files)


# the header reader: fast path and pydicom agree ------------------------------------------
def test_unchanged_session_is_answered_from_the_cache(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Path] = []
    monkeypatch.setattr(emulator_index, "read_header", lambda p: reads.append(p) or read_header(p))
    index = EmulatorIndex(data)
    session = index.experiment("XNAT_E00001")
    assert session is not None
    first = index.scans(session)
    assert [s.id for s in first] == ["2", "5"] and len(reads) == 7
    assert index.scans(session) == first and len(reads) == 7  # nothing changed: nothing read
    folder = data / "STUDYA" / "STUDYA_CMH_0001_01" / "s1_2_3_5"
    (folder / "img0004.dcm").unlink()
    (replacement,) = write_series(data / "elsewhere", series_uid="1.2.3.8", series_number=8,
                                  description="fmap", n_files=1)
    replacement.replace(folder / "img0003.dcm")  # same name, other content
    scans = index.scans(session)
    assert len(reads) == 8  # only the replaced file was read again
    assert [(s.id, [f.name for f in s.files]) for s in scans] == [
        ("2", ["img0001.dcm", "img0002.dcm", "img0003.dcm"]), ("5", ["img0001.dcm", "img0002.dcm"]),
        ("8", ["img0003.dcm"])]


def streams_end(emu: XnatEmulator) -> int:
    """The zip streams still counted once the server's threads are done (the client has every
    byte a moment before the server's thread leaves the stream)."""
    deadline = time.monotonic() + 10
    while emu.downloads.in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    return emu.downloads.in_flight()


def test_download_gauge_counts_zip_streams_at_once(emu: XnatEmulator) -> None:
    zips = ["/data/experiments/XNAT_E00001/scans/2/resources/DICOM/files?format=zip",
            "/data/experiments/XNAT_E00001/scans/5/resources/DICOM/files?format=zip",
            "/data/experiments/XNAT_E00002/scans/3/resources/DICOM/files?format=zip"]
    assert get(emu, "/data/projects/STUDYA/experiments").status_code == 200  # listings are not downloads
    emu.drip_next(0.02, seconds=1.0, kind="zip", times=3)  # each zip held open for a second
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda path: get(emu, path), zips))
    assert [a.status_code for a in answers] == [200, 200, 200]
    peaks = emu.downloads.peaks()
    assert (peaks.streams, peaks.sessions, peaks.per_session, peaks.total) == (3, 2, 2, 3)
    assert streams_end(emu) == 0
    get(emu, zips[0])
    assert emu.downloads.peaks().total == 4
    streams_end(emu)
    emu.downloads.reset()
    assert emu.downloads.peaks() == type(peaks)(0, 0, 0, 0)
