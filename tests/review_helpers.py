"""Review rows as the review app writes them (each appended with the table's next id), for the
tests of reviews in the pipeline."""

from __future__ import annotations

from datetime import UTC, datetime

from datman_flow.review.scales import Display, Rating, Step
from datman_flow.store import MetricStore
from datman_flow.store.review_rows import RatingImageRow, RatingRow, SeriesDecisionRow, SignOffRow

REVIEW_URL = "http://review.lab.example:8050"
PARTICIPANT = "SPN01_CMH_0007_01_01"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


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
