"""The review app over real HTTP on 127.0.0.1 (uvicorn in a thread): a session's full-size QC
pictures served to a logged-in reviewer, everything else refused with 404, nothing to anyone
else; the links the UI's thumbnails carry; the `datman-flow review` command."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

from datman_flow.qc.review_pictures import render_review_pictures
from datman_flow.review.server import ReviewServer
from datman_flow.review.urls import BadPicturesUrl, picture_url, pictures_url_from

from review_helpers import PASSWORD, Browser, add_reviewer

QC_LABEL = "SPN01_CMH_0001_01_01"  # conftest's qc_session


@pytest.fixture(scope="module")
def served(qc_session, tmp_path_factory):
    """The QC session's data folder (copied: the tests add hostile files) behind a running server."""
    assert {q.series.session for q in qc_session[1]} == {QC_LABEL}
    data = tmp_path_factory.mktemp("review") / "data"
    shutil.copytree(qc_session[0], data, symlinks=True)
    add_reviewer(data, "alice")
    pictures = sorted(data.rglob("*_qc.png"))
    to_rate = [p.path for q in qc_session[1] for p in render_review_pictures(
        data / Path(str(q.series.nifti_path)).relative_to(qc_session[0]), q.kind)]
    with ReviewServer(data) as server:
        browser = Browser(server.host, server.port)
        assert browser.login("alice").status == 303
        server.cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        yield server, data, pictures + to_rate


def get(server: ReviewServer, path: str, method: str = "GET", login: bool = True) -> tuple[int, dict[str, str], bytes]:
    """A raw request (as the logged-in reviewer, unless not `login`): the path is sent exactly as
    given (no client-side normalisation of '..')."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)  # a busy machine
    try:
        connection.request(method, path, headers={"Cookie": server.cookie} if login else {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_a_session_s_picture_is_served_with_cache_control(served):
    server, _, pictures = served
    for png in pictures:
        status, headers, body = get(server, f"/pictures/{QC_LABEL}/{png.name}")
        assert status == 200 and body == png.read_bytes()
        assert headers["content-type"] == "image/png" and headers["cache-control"] == "private, max-age=300"
        assert headers["x-content-type-options"] == "nosniff" and "etag" in headers
    status, headers, body = get(server, f"/pictures/{QC_LABEL}/{pictures[0].name}", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) == pictures[0].stat().st_size
    assert get(server, f"/pictures/{QC_LABEL}/{pictures[0].name}", method="POST")[0] == 403  # no CSRF token
    status, headers, body = get(server, f"/pictures/{QC_LABEL}/{pictures[0].name}", login=False)
    assert status == 303 and headers["location"].startswith("/login?next=") and b"PNG" not in body


def test_the_link_of_a_thumbnail_fetches_its_picture(served, qc_session):
    server, data, _ = served
    for q in qc_session[1]:
        url = urlsplit(picture_url(server.url + "/", q.series.session, q.picture_path))
        assert f"{url.scheme}://{url.netloc}" == server.url
        status, _, body = get(server, url.path)
        assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
        assert body == (data / Path(q.picture_path).relative_to(qc_session[0])).read_bytes()


def test_everything_but_a_session_s_qc_picture_is_refused(served, tmp_path_factory):
    server, data, pictures = served
    folder, name = pictures[0].parent, pictures[0].name
    assert name.endswith("_qc.png")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret_qc.png").write_bytes(pictures[0].read_bytes())
    (folder / f"{QC_LABEL}_T1_09_leak_qc.png").symlink_to(outside / "secret_qc.png")  # leaves the folder
    (folder / f"{QC_LABEL}_T1_08_json_qc.png").symlink_to(folder / name.replace("_qc.png", "_qc.json"))
    (folder / "SPN01_CMH_0001_01_02_T1_02_t1_qc.png").write_bytes(b"another repeat's picture")
    nifti = name.replace("_qc.png", ".nii.gz")
    assert (folder / nifti).exists()
    refused = [
        f"/pictures/{QC_LABEL}/{nifti}",  # the NIfTI beside the picture
        f"/pictures/{QC_LABEL}/{name.replace('_qc.png', '_qc.json')}",  # other extension
        f"/pictures/{QC_LABEL}/{name}.bak",
        f"/pictures/{QC_LABEL}/{QC_LABEL}_T1_09_leak_qc.png",  # symlink out of the folder
        f"/pictures/{QC_LABEL}/{QC_LABEL}_T1_08_json_qc.png",  # symlink to a file that is no picture
        f"/pictures/{QC_LABEL}/SPN01_CMH_0001_01_02_T1_02_t1_qc.png",  # the folder's other session
        f"/pictures/{QC_LABEL}/{QC_LABEL}_T1_07_none_qc.png",  # no such file
        f"/pictures/{QC_LABEL}/..%2F..%2F..%2Foutside%2Fsecret_qc.png",
        f"/pictures/{QC_LABEL}/../../nii/{folder.name}/{name}",
        f"/pictures/{QC_LABEL}/%2Fetc%2Fpasswd",
        f"/pictures/{QC_LABEL}/.{name}",
        f"/pictures/{QC_LABEL}/{name}%00.png",
        f"/pictures/{QC_LABEL}/{'A' * 300}_qc.png",
        f"/pictures/..%2F{folder.name}/{name}",  # hostile session labels
        f"/pictures/{QC_LABEL.replace('_01_01', '_01_01_01')}/{name}",
        f"/pictures/not-a-label/{name}",
        "/pictures/..%2F..%2Fetc/passwd_qc.png",
        f"/pictures/{QC_LABEL}",
        f"/pictures/{QC_LABEL}/",
        f"/{folder.name}/{name}",
    ]
    for path in refused:
        status, _, body = get(server, path)
        assert status == 404, path
        assert b"PNG" not in body and b"repeat" not in body, path
    assert get(server, f"/pictures/{QC_LABEL}/{name}")[0] == 200  # and the real one still is served


def test_a_picture_to_rate_is_served_and_nothing_that_only_looks_like_one(served, tmp_path_factory):
    server, data, pictures = served
    rated = [p for p in pictures if "_review-" in p.name]
    assert len(rated) == 9
    for png in rated:
        status, headers, body = get(server, f"/pictures/{QC_LABEL}/{png.name}")
        assert status == 200 and body == png.read_bytes() and headers["content-type"] == "image/png"
    folder, name = rated[0].parent, rated[0].name
    assert name.endswith("_review-x.png")
    stem = name[: -len("_review-x.png")]
    outside = tmp_path_factory.mktemp("outside_rated")
    (outside / "secret_review-x.png").write_bytes(rated[0].read_bytes())
    for fake in (f"{stem}_review-w.png", f"{stem}_review-X.png", f"{stem}_review-xy.png", f"{stem}_review.png",
                 f"{stem}_review-x.jpg", f"{stem}-review-x.png.png.bak", "review-x.png",
                 "SPN01_CMH_0001_01_02_T1_02_t1_review-x.png"):  # real files, in the session's folder
        (folder / fake).write_bytes(rated[0].read_bytes())
    (folder / f"{QC_LABEL}_T1_09_leak_review-y.png").symlink_to(outside / "secret_review-x.png")
    (folder / f"{QC_LABEL}_T1_08_nifti_review-z.png").symlink_to(folder / f"{stem}.nii.gz")
    (folder / f"{QC_LABEL}_T1_07_dir_review-x.png").mkdir()
    refused = [
        f"/pictures/{QC_LABEL}/{stem}_review-w.png",  # not x, y or z
        f"/pictures/{QC_LABEL}/{stem}_review-X.png",
        f"/pictures/{QC_LABEL}/{stem}_review-xy.png",
        f"/pictures/{QC_LABEL}/{stem}_review.png",
        f"/pictures/{QC_LABEL}/{stem}_review-x.jpg",
        f"/pictures/{QC_LABEL}/{stem}-review-x.png.png.bak",
        f"/pictures/{QC_LABEL}/review-x.png",  # no label
        f"/pictures/{QC_LABEL}/SPN01_CMH_0001_01_02_T1_02_t1_review-x.png",  # the folder's other session
        f"/pictures/SPN01_CMH_0001_01_02/{name}",  # the other session asking for this one's picture
        f"/pictures/{QC_LABEL}/{QC_LABEL}_T1_09_leak_review-y.png",  # symlink out of the folder
        f"/pictures/{QC_LABEL}/{QC_LABEL}_T1_08_nifti_review-z.png",  # symlink to the NIfTI
        f"/pictures/{QC_LABEL}/{QC_LABEL}_T1_07_dir_review-x.png",  # a folder
        f"/pictures/{QC_LABEL}/{QC_LABEL}_T1_06_none_review-x.png",  # no such file
        f"/pictures/{QC_LABEL}/..%2F{folder.name}%2F{name}",
        f"/pictures/{QC_LABEL}/{name}%00",
        f"/pictures/{QC_LABEL}/.{name}",
    ]
    for path in refused:
        status, _, body = get(server, path)
        assert status == 404, path
        assert b"PNG" not in body, path
    assert get(server, f"/pictures/{QC_LABEL}/{name}")[0] == 200


def test_the_server_stops_with_its_owner(qc_session):
    with ReviewServer(qc_session[0]) as server:
        port = server.port
        assert get(server, "/", login=False)[0] == 303
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()


def test_picture_urls_are_percent_encoded_under_the_base():
    assert picture_url("http://pics.lab:3001/", "SPN01_CMH_0001_01_01", "/d/nii/x/A B_qc.png") == \
        "http://pics.lab:3001/pictures/SPN01_CMH_0001_01_01/A%20B_qc.png"
    assert picture_url("https://lab.org/qc", "S_C_1_01_01", Path("f_qc.png")) == \
        "https://lab.org/qc/pictures/S_C_1_01_01/f_qc.png"


def test_the_base_url_comes_from_the_option_or_the_environment_and_is_checked():
    assert pictures_url_from(None, {}) == "" and pictures_url_from("", {"DATMAN_PICTURES_URL": "  "}) == ""
    assert pictures_url_from(None, {"DATMAN_PICTURES_URL": "http://127.0.0.1:3001/"}) == "http://127.0.0.1:3001"
    assert pictures_url_from("https://qc.lab/", {"DATMAN_PICTURES_URL": "http://other"}) == "https://qc.lab"
    for bad in ("javascript:alert(1)", "ftp://lab/pics", "127.0.0.1:3001", "http://", "http://h:port",
                "http://h/x?y=1", "http://h/#top", "http://u:p@h", "http://h/a b", "http://h/a)(b"):
        with pytest.raises(BadPicturesUrl, match="environment variable DATMAN_PICTURES_URL"):
            pictures_url_from(None, {"DATMAN_PICTURES_URL": bad})


def test_the_review_command_serves_the_data_folder_until_stopped(served):
    _, data, pictures = served
    with socket.socket() as probe:  # a free port (released just before the server takes it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "datman_flow.cli", "review", "--port", str(port), "--data-dir", str(data)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as reply:
                    assert reply.status == 200 and b'name="csrf_token"' in reply.read()
                break
            except URLError:
                assert server.poll() is None and time.monotonic() < deadline, "the review app did not start"
                time.sleep(0.2)
        browser = Browser("127.0.0.1", port)
        assert browser.login("alice", PASSWORD).status == 303
        picture = browser.get(f"/pictures/{QC_LABEL}/{pictures[0].name}")
        assert picture.status == 200 and picture.body == pictures[0].read_bytes()
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    # uvicorn shuts down cleanly, then ends by the signal it was sent
    assert server.returncode in (0, -signal.SIGTERM) and "Finished server process" in output, output
    assert f"DATMAN_PICTURES_URL=http://127.0.0.1:{port}" in output and f"on http://127.0.0.1:{port}/" in output
    missing = subprocess.run([*command[:-1], str(data / "nowhere")], capture_output=True, text=True, env=env,
                             timeout=60, check=False)
    assert missing.returncode == 2 and "no data folder at" in missing.stderr
