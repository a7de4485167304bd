"""The MRIQC rating widget's Web-API over real HTTP on 127.0.0.1 (uvicorn in a thread, serving
only `mriqc_routes`): a rating with a reviewer's token lands in the review tables against the
series whose NIfTI has that md5sum; everything else is refused with Eve's error shape."""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from datman_flow.review.accounts import Accounts
from datman_flow.review.mriqc_api import mriqc_routes
from datman_flow.review.mriqc_rating import MriqcRating
from datman_flow.review.scales import Display, Rating, Step
from datman_flow.store import MetricStore, QcSeriesRow
from datman_flow.store.review_rows import RatingImageRow, RatingRow, RatingSessionRow

from measured_helpers import QC_LABEL, md5_of, measured_copy


class Served:
    """Starlette with just the MRIQC routes, on a free port, for the test's duration."""

    def __init__(self, data: Path) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        app = Starlette(routes=mriqc_routes(data))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=5))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "the MRIQC routes did not start within 10 s"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict | None]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            return (response.status, {k.lower(): v for k, v in response.getheaders()},
                    json.loads(raw) if raw.startswith(b"{") else None)
        finally:
            connection.close()


@pytest.fixture(scope="module")
def api(qc_session, tmp_path_factory):
    data, rows = measured_copy(qc_session, tmp_path_factory.mktemp("mriqc_api"))
    accounts = Accounts(data)
    accounts.add("ana", "a long password")
    token = accounts.new_token("ana")
    with Served(data) as served:
        yield served, data, token, {row.tag: row for row in rows}


def post(served: Served, token: str | None, body: object, path: str = "/api/v1/rating",
         raw: bytes | None = None) -> tuple[int, dict[str, str], dict | None]:
    headers = {"Content-Type": "application/json", "Origin": "null"}
    if token is not None:
        headers["Authorization"] = token
    return served.request("POST", path, raw if raw is not None else json.dumps(body).encode(), headers)


def test_a_rating_is_recorded_against_the_series_picture(api):
    served, data, token, rows = api
    rst = rows["RST"]
    body = {"rating": 2, "md5sum": md5_of(rst).upper(), "name": "", "comment": '["head-motion", "ghosting"]'}
    status, headers, answer = post(served, token, body)
    assert status == 201, answer
    assert answer["_status"] == "OK" and headers["access-control-allow-origin"] == "*"
    store = MetricStore.under(data)
    rating = next(r for r in store.read(RatingRow, QC_LABEL) if str(r.id) == answer["_id"])
    assert (rating.rating, rating.user, rating.origin, rating.source_data_issue) == (Rating.UNSURE, "ana", "mriqc", False)
    assert rating.notes == 'MRIQC rating 2 (poor); artifacts: ["head-motion", "ghosting"]'
    image = next(i for i in store.read(RatingImageRow, QC_LABEL) if i.id == rating.img_id)
    nifti = Path(rst.json_path).name.replace("_qc.json", ".nii.gz")
    assert image.img == str(Path(rst.picture_path).relative_to(data)) and (data / image.img).exists()
    assert image.file1 == str(Path(rst.json_path).relative_to(data).with_name(nifti)) and (data / image.file1).exists()
    assert (image.slice, image.file2, image.display, image.step) == (None, None, Display.Z, Step.RAW_BOLD)
    assert (image.series_number, image.tag, image.scan_session) == (rst.series_number, "RST", QC_LABEL)
    assert image.width and image.height and image.width > 100
    sitting = next(s for s in store.read(RatingSessionRow, QC_LABEL) if s.id == rating.session)
    assert (sitting.step, sitting.user) == (Step.RAW_BOLD, "ana")

    # nireports posts to the webapi url itself, with Bearer accepted: the same picture, a new rating
    status, _, again = post(served, f"Bearer {token}", {**body, "rating": "3.5", "comment": "fine"}, path="/api/v1")
    assert status == 201 and int(again["_id"]) > int(answer["_id"])
    second = next(r for r in store.read(RatingRow, QC_LABEL) if str(r.id) == again["_id"])
    assert second.img_id == rating.img_id and second.session != rating.session and second.rating == Rating.PASS
    assert second.notes == "MRIQC rating 3.5 (acceptable); comment: fine"
    assert sum(1 for i in store.read(RatingImageRow, QC_LABEL) if i.step == Step.RAW_BOLD) == 1


def test_the_t1_rating_goes_to_its_own_picture(api):
    served, data, token, rows = api
    status, _, answer = post(served, token, {"rating": 1, "md5sum": md5_of(rows["T1"])})
    assert status == 201
    store = MetricStore.under(data)
    rating = next(r for r in store.read(RatingRow, QC_LABEL) if str(r.id) == answer["_id"])
    image = next(i for i in store.read(RatingImageRow, QC_LABEL) if i.id == rating.img_id)
    assert (rating.rating, image.step, image.tag) == (Rating.FAIL, Step.RAW_T1W, "T1")
    assert rating.notes == "MRIQC rating 1 (exclude)"


def test_unknown_md5_is_404_with_the_reason(api):
    served, _, token, _ = api
    status, headers, answer = post(served, token, {"rating": 3, "md5sum": "0" * 32})
    assert status == 404 and headers["access-control-allow-origin"] == "*"
    assert answer["_status"] == "ERR" and answer["_error"]["code"] == 404
    assert answer["_error"]["message"].startswith(f"no series with md5sum {'0' * 32}")


@pytest.mark.parametrize("authorization", [None, "", "Bearer ", "not-a-token", "Bearer " + "x" * 43])
def test_no_or_unknown_token_is_401(api, authorization):
    served, data, _, rows = api
    before = len(MetricStore.under(data).read(RatingRow, QC_LABEL))
    status, _, answer = post(served, authorization, {"rating": 4, "md5sum": md5_of(rows["RST"])})
    assert status == 401 and answer["_error"]["code"] == 401
    assert "token" in answer["_error"]["message"]
    assert len(MetricStore.under(data).read(RatingRow, QC_LABEL)) == before


@pytest.mark.parametrize(("raw", "reason"), [
    (b"not json", "not JSON"), (b"\xff\xfe", "not JSON"), (b"[1, 2]", "JSON object"),
    (b'{"md5sum": "%s"}', "missing rating"), (b'{"rating": 3}', "missing md5sum"),
    (b'{"rating": true, "md5sum": "%s"}', "must be a number"), (b'{"rating": "good", "md5sum": "%s"}', "not a number"),
    (b'{"rating": 5, "md5sum": "%s"}', "outside 1 - 4"), (b'{"rating": "NaN", "md5sum": "%s"}', "outside"),
    (b'{"rating": 3, "md5sum": "../../etc/passwd"}', "32 hexadecimal"),
    (b'{"rating": 3, "md5sum": 12}', "32 hexadecimal"), (b'{"rating": 3, "md5sum": "%s", "comment": 7}', "comment must be text"),
])
def test_bad_bodies_are_422_with_the_reason(api, raw, reason):
    served, _, token, rows = api
    body = raw.replace(b"%s", md5_of(rows["RST"]).encode())
    status, _, answer = post(served, token, None, raw=body)
    assert status == 422 and answer["_status"] == "ERR"
    assert reason in answer["_error"]["message"]


def test_a_body_too_large_is_413(api):
    served, _, token, rows = api
    body = json.dumps({"rating": 3, "md5sum": md5_of(rows["RST"]), "comment": "x" * 70_000}).encode()
    status, _, answer = post(served, token, None, raw=body)
    assert status == 413 and "too large" in answer["_error"]["message"]


def test_a_body_too_large_without_its_length_is_413(api):
    """Chunked: no Content-Length to refuse it by, so the stream is cut at the limit."""
    served, _, token, _ = api
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        chunks = (b"x" * 8192 for _ in range(20))
        connection.request("POST", "/api/v1/rating", body=chunks, headers={"Authorization": token},
                           encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413
    finally:
        connection.close()


def test_the_preflight_allows_any_origin_with_the_token_header(api):
    served, *_ = api
    for path in ("/api/v1/rating", "/api/v1"):
        status, headers, _ = served.request("OPTIONS", path, headers={
            "Origin": "null", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert status == 204
        assert headers["access-control-allow-origin"] == "*"
        assert headers["access-control-allow-methods"] == "POST, OPTIONS"
        assert headers["access-control-allow-headers"] == "Authorization, Content-Type"
    assert served.request("GET", "/api/v1/rating")[0] == 405


@pytest.mark.parametrize(("value", "verdict", "label"), [
    (1, Rating.FAIL, "exclude"), (1.5, Rating.FAIL, "exclude"), (2, Rating.UNSURE, "poor"),
    (2.5, Rating.UNSURE, "poor"), (3, Rating.PASS, "acceptable"), (4, Rating.PASS, "excellent")])
def test_the_slider_s_values_map_to_verdicts(api, value, verdict, label):
    served, data, token, rows = api
    assert MriqcRating(float(value), "0" * 32).verdict == verdict
    status, _, answer = post(served, token, {"rating": str(value), "md5sum": md5_of(rows["DTI60"])})
    assert status == 201
    rating = next(r for r in MetricStore.under(data).read(RatingRow, QC_LABEL) if str(r.id) == answer["_id"])
    assert rating.rating == verdict and rating.notes == f"MRIQC rating {value:g} ({label})"


def test_a_session_measured_after_the_start_is_found_without_a_restart(api):
    """The index follows the store: a new session's series are found, a re-measured one's old md5 is not."""
    served, data, token, rows = api
    store = MetricStore.under(data)
    other = "SPN01_CMH_0002_01_01"
    folder = data / "nii" / "SPN01_CMH_0002_01"
    folder.mkdir(parents=True)
    record = json.loads(Path(rows["RST"].json_path).read_text())
    record["provenance"]["md5sum"] = "ab" * 16
    json_path = folder / f"{other}_RST_03_rst_qc.json"
    json_path.write_text(json.dumps(record))
    new_row = dataclasses.replace(rows["RST"], session=other, json_path=str(json_path), picture_path="")
    store.replace(QcSeriesRow, other, [new_row])
    status, _, answer = post(served, token, {"rating": 4, "md5sum": "ab" * 16})
    assert status == 201
    image = next(i for i in store.read(RatingImageRow, other))
    assert (image.img, image.width, image.file1) == ("", None, "nii/SPN01_CMH_0002_01/SPN01_CMH_0002_01_01_RST_03_rst.nii.gz")

    record["provenance"]["md5sum"] = "cd" * 16  # measured again: a new NIfTI, new rows
    json_path.write_text(json.dumps(record))
    store.replace(QcSeriesRow, other, [dataclasses.replace(new_row, seconds=2.0)])
    assert post(served, token, {"rating": 4, "md5sum": "ab" * 16})[0] == 404
    assert post(served, token, {"rating": 4, "md5sum": "cd" * 16})[0] == 201
