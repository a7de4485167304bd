"""The review app's tests' tools: a data folder with recorded sessions (store rows as an ingest
writes them, pictures to rate registered as the renderer registers them), and a small browser
over http.client (cookies kept, redirects not followed, paths sent exactly as given); and review
rows as the app writes them, for the tests of reviews in the pipeline."""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import nibabel as nib
import numpy as np
from PIL import Image

from datman_flow.layout import DataLayout
from datman_flow.naming import parse_session_label
from datman_flow.review.accounts import Accounts
from datman_flow.review.scales import Display, Rating, Step
from datman_flow.store import (
    CheckRow,
    HeaderDiffRow,
    MetricStore,
    QcFlagRow,
    QcMetricRow,
    QcSeriesRow,
    SeriesRow,
    SessionRow,
)
from datman_flow.store.review_rows import RatingImageRow, RatingRow, SeriesDecisionRow, SignOffRow

PASSWORD = "correct horse battery"
SERIES = (("2", "T1", "anat", "t1 mprage"), ("3", "RST", "fmri", "rest bold"), ("4", "DTI60", "dwi", "dti 60"))
PICTURE_SIZE = (240, 180)  # width, height of the pictures to rate
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
REVIEW_URL = "http://review.lab.example:8050"
PARTICIPANT = "SPN01_CMH_0007_01_01"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def image_key(row: RatingImageRow) -> tuple:
    return (row.slice, row.file1, row.display, row.step)


def record_session(data: Path, label: str, scan_date: str, *, health: str = "ok", reasons: str = "",
                   status: str = "ingested", pictures: bool = True, snr: float = 10.0) -> list[RatingImageRow]:
    """One session's rows (session, series, QC, metrics) and, with `pictures`, a QC picture, a
    small NIfTI and its three pictures to rate per series, registered as the renderer registers
    them (so the app draws nothing); returns the axial pictures."""
    layout, scan_id = DataLayout(data), parse_session_label(label)
    store, folder = layout.metric_store, layout.nii(scan_id)
    folder.mkdir(parents=True, exist_ok=True)
    store.replace(SessionRow, label, [SessionRow(
        session=label, study=scan_id.study, site=scan_id.site, subject=scan_id.subject, timepoint=scan_id.timepoint,
        repeat=scan_id.repeat, xnat_project=f"{scan_id.study}_{scan_id.site}", xnat_id=f"XNAT_E{abs(hash(label)) % 10**5:05d}",
        insert_date=f"{scan_date} 10:00:00", scan_date=scan_date, ingested_at=datetime.now(), status=status,
        health=health, health_reasons=reasons)])
    if status == "rejected":  # refused at the door: nothing else recorded
        return []
    series, qc, metrics = [], [], []
    for number, tag, kind, description in SERIES:
        stem = f"{label}_{tag}_{int(number):02d}_{description.replace(' ', '-')}"
        series.append(SeriesRow(session=label, scan_id=number, series_number=number, description=description, tag=tag,
                                n_files=10, n_frames=10, download_status="complete", verified="md5",
                                nifti_path=str(folder / f"{stem}.nii.gz"), conversion_status="converted",
                                dcm2niix_version="v1.0.20240202"))
        picture = folder / f"{stem}_qc.png"
        if pictures:
            Image.new("RGB", (320, 200), (20, 20, 20)).save(picture)
        qc.append(QcSeriesRow(session=label, series_number=number, tag=tag, qc_type=kind, status="measured",
                              picture_path=str(picture) if pictures else ""))
        key = {"anat": "snr_total", "fmri": "tsnr", "dwi": "snr_b0"}[kind]
        metrics += [QcMetricRow(label, number, tag, key, snr * (1 + int(number) / 10), "test", datetime.now()),
                    QcMetricRow(label, number, tag, "fd_mean" if kind != "anat" else "cnr", 0.2, "test",
                                datetime.now())]
    store.replace(SeriesRow, label, series)
    store.replace(QcSeriesRow, label, qc)
    store.replace(QcMetricRow, label, metrics)
    store.replace(CheckRow, label, [CheckRow(session=label, check_name="expected_series", tag=tag, passed=True,
                                             expected=1, found=1, detail="ok") for _, tag, _, _ in SERIES],
                  part="expected_series")
    if not pictures:
        return []
    images = []
    for number, tag, _, description in SERIES:
        stem = f"{label}_{tag}_{int(number):02d}_{description.replace(' ', '-')}"
        nifti = folder / f"{stem}.nii.gz"  # a small real NIfTI, written before its pictures (they are newer)
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), nifti)
        for display, axis in enumerate("xyz"):  # the three pictures the renderer would draw, registered
            png = folder / f"{stem}_review-{axis}.png"
            Image.new("L", PICTURE_SIZE, 60).save(png)
            images.append(RatingImageRow(id=0, img=str(png.relative_to(data)), slice=40,
                                         file1=str(nifti.relative_to(data)), file2=None, display=display,
                                         step={"T1": 100, "RST": 101, "DTI60": 102}[tag], created=utc_now(),
                                         scan_session=label, series_number=number, tag=tag, width=PICTURE_SIZE[0],
                                         height=PICTURE_SIZE[1]))
    registered = store.append(RatingImageRow, label, images, unique=image_key)
    return [row for row in registered if row.display == 2]  # the axial ones: what the tests rate


def flag_session(data: Path, label: str) -> None:
    """A QC flag and a header finding on the session's T1."""
    store = DataLayout(data).metric_store
    store.replace(QcFlagRow, label, [QcFlagRow(label, "2", "T1", "snr_total", 3.0, "site history", low=8.0, high=None,
                                               median=11.0, z=-4.2, n_history=9)])
    store.replace(HeaderDiffRow, label, [HeaderDiffRow(label, "2", "T1", "RepetitionTime", "2.3", "2.5", 0.01,
                                                       "changed", "configs/gold/SPN01/CMH/T1.json", False, "warn")])


def add_reviewer(data: Path, name: str) -> None:
    accounts = Accounts(data)
    if not accounts.exists(name):
        accounts.add(name, PASSWORD)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def csrf(self) -> str:
        found = CSRF_FIELD.search(self.text)
        assert found, f"no csrf_token field in the page: {self.text[:300]}"
        return found.group(1)


class Browser:
    """Requests to one server with the cookies it set (Set-Cookie kept, nothing followed)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None,
                body: bytes | None = None) -> Reply:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urlencode(form).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        connection = http.client.HTTPConnection(self.host, self.port, timeout=20)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            cookies = response.msg.get_all("set-cookie") or []
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, cookies, response.read())
        finally:
            connection.close()
        for cookie in cookies:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if value == "null" or "expires=Thu, 01 Jan 1970" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return reply

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict | None = None, **kwargs) -> Reply:
        return self.request("POST", path, form=form, **kwargs)

    def login(self, name: str, password: str = PASSWORD, next_path: str = "") -> Reply:
        page = self.get("/login" + (f"?{urlencode({'next': next_path})}" if next_path else ""))
        form = {"username": name, "password": password, "csrf_token": page.csrf}
        if next_path:
            form["next"] = next_path
        return self.post("/login", form)

    def token(self, path: str = "/") -> str:
        """The CSRF token a page of the app carries."""
        return self.get(path).csrf


LABEL = "SPN01_CMH_0001_01_01"  # newest scan, pictures to rate, flags
OLDER = "SPN01_CMH_0002_01_01"  # pending, no pictures
OTHER_SITE = "SPN01_ZHH_0003_01_01"
OTHER_STUDY = "ABC02_CMH_0004_01_01"
RATED = "SPN01_CMH_0005_01_01"  # pending, rated once: `next` goes elsewhere
REJECTED = "SPN01_CMH_0006_01_01"


def review_data(data: Path) -> tuple[dict[str, RatingImageRow], list[RatingImageRow]]:
    """The sessions above recorded in `data`, reviewers alice and bob: (LABEL's pictures to rate
    by tag, RATED's pictures)."""
    data.mkdir(parents=True, exist_ok=True)
    images = record_session(data, LABEL, "2024-05-03", health="attention", reasons="QC outlier in series 2 (T1)",
                            snr=4.0)
    flag_session(data, LABEL)
    record_session(data, OLDER, "2024-04-01", pictures=False, snr=10.0)
    record_session(data, OTHER_SITE, "2024-04-20", pictures=False, snr=30.0)
    record_session(data, OTHER_STUDY, "2024-03-02", pictures=False)
    rated = record_session(data, RATED, "2024-05-01", snr=12.0)
    record_session(data, REJECTED, "2024-05-09", status="rejected", pictures=False)
    DataLayout(data).metric_store.append(RatingRow, RATED, [RatingRow(0, False, 0, rated[0].id, 1, "",
                                                                       images[0].created, RATED, "carol")])
    for name in ("alice", "bob"):
        add_reviewer(data, name)
    return {i.tag: i for i in images}, rated


# review rows as the app writes them (each appended with the table's next id), for the pipeline's tests
def register_picture(store: MetricStore, label: str, series: str = "2", tag: str = "T1") -> RatingImageRow:
    [image] = store.append(RatingImageRow, label, [RatingImageRow(
        id=0, img=f"nii/{label}/{label}_{tag}_review-z.png", slice=88, file1=f"nii/{label}/{label}_{tag}.nii.gz",
        file2=None, display=Display.Z, step=Step.RAW_T1W, created=utc_now(), scan_session=label,
        series_number=series, tag=tag, width=400, height=400)])
    return image


def rate(store: MetricStore, image: RatingImageRow, rating: Rating, user: str, notes: str = "",
         created: datetime | None = None) -> RatingRow:
    [row] = store.append(RatingRow, image.scan_session, [RatingRow(
        id=0, source_data_issue=False, rating=int(rating), img_id=image.id, session=1, notes=notes,
        created=created or utc_now(), scan_session=image.scan_session, user=user)])
    return row


def sign_off(store: MetricStore, label: str, user: str, created: datetime | None = None) -> SignOffRow:
    [row] = store.append(SignOffRow, label, [SignOffRow(id=0, scan_session=label, user=user, comment="looked at all",
                                                        created=created or utc_now())])
    return row


def decide(store: MetricStore, label: str, series: str, decision: str, user: str, reason: str,
           created: datetime | None = None) -> SeriesDecisionRow:
    [row] = store.append(SeriesDecisionRow, label, [SeriesDecisionRow(
        id=0, scan_session=label, series_number=series, tag="T1", decision=decision, reason=reason, user=user,
        created=created or utc_now())])
    return row


def rows(data, row_type, label=LABEL):
    return DataLayout(data).metric_store.read(row_type, label)
