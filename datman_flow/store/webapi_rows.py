"""What was sent to an MRIQC Web-API: one row per record the server accepted (201 and its `_id`),
so that the same series' image is never sent twice to the same endpoint. Rows are added, never
replaced (store/append.py), one file per scanning session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True)
class WebapiSubmissionRow:
    """One record accepted by a Web-API."""

    TABLE: ClassVar[str] = "webapi_submissions"
    id: int
    scan_session: str
    series_number: str
    tag: str
    modality: str  # T1w | bold: the resource it was posted to
    md5sum: str  # the NIfTI's, as sent in provenance.md5sum
    endpoint: str  # e.g. https://mriqc.nimh.nih.gov/api/v1
    api_id: str  # the server's `_id` ('' if it answered 201 without one)
    sent_at: datetime  # UTC


WEBAPI_ROW_TYPES: tuple[type, ...] = (WebapiSubmissionRow,)
