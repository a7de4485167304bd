"""Sending a session's T1w and BOLD records to an MRIQC Web-API, once per endpoint.

For each measured series of a session: what becomes of it (`Candidate`: to send, or why not:
diffusion, blacklisted by a reviewer, a phantom, not sendable, already sent), then a POST of
each record to `<endpoint>/<modality>` with the token in `Authorization`, as MRIQC does. A 201
with its `_id` is recorded in `webapi_submissions` (so the same image is never sent twice to the
same endpoint); a 422 is reported with the server's `_issues` and not recorded, and so is any
other answer or a network failure. Every request has a deadline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

from datman_flow.export.webapi import MODALITY_OF_QC_TYPE, WebapiRecord, webapi_record
from datman_flow.layout import DataLayout
from datman_flow.naming import parse_session_label
from datman_flow.safe_paths import UnsafePath, inside
from datman_flow.store.metric_store import MetricStore
from datman_flow.store.rows import QcSeriesRow
from datman_flow.store.webapi_rows import WebapiSubmissionRow

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://mriqc.nimh.nih.gov/api/v1"  # MRIQC's public Web-API
TIMEOUT = (10.0, 30.0)  # seconds to connect, and to wait for the answer
MAX_JSON_BYTES = 20 * 1024 * 1024
SHOWN_ANSWER = 300  # characters of an unexpected answer quoted in the report


@dataclass(frozen=True)
class Candidate:
    """One measured series of a session, and whether it is sent (`skip` says why not)."""

    session: str
    series_number: str
    tag: str
    qc_type: str
    record: WebapiRecord | None = None
    skip: str = ""

    @property
    def name(self) -> str:
        return f"{self.session} series {self.series_number} ({self.tag})"


@dataclass(frozen=True)
class Submitted:
    candidate: Candidate
    status: str  # sent | refused (422) | failed
    api_id: str = ""
    reason: str = ""


def series_key(row: QcSeriesRow) -> tuple[int, str]:
    number = row.series_number
    return (int(number), number) if number.isdigit() else (1 << 30, number)


def read_mriqc(root: Path, json_path: str) -> dict:
    """An MRIQC-format JSON of the data folder (ValueError saying why it cannot be used)."""
    if not json_path:
        raise ValueError("no MRIQC record was written")
    try:
        path = inside(Path(json_path), root)
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"{path} is larger than {MAX_JSON_BYTES} bytes")
        data = json.loads(path.read_text())
    except (OSError, UnsafePath, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(data, dict):
        raise ValueError(f"{json_path} is not a JSON object")
    return data


def session_candidates(layout: DataLayout, label: str, endpoint: str,
                       blacklisted: Collection[str]) -> list[Candidate]:
    """What becomes of each measured series of session `label` (InvalidLabel for a bad label)."""
    scan_id = parse_session_label(label)
    store = layout.metric_store
    sent = {(r.series_number, r.md5sum): r for r in store.read(WebapiSubmissionRow, label) if r.endpoint == endpoint}
    out = []
    for row in sorted(store.read(QcSeriesRow, label), key=series_key):
        if row.status != "measured":
            continue
        base = Candidate(label, row.series_number, row.tag, row.qc_type)
        if row.qc_type not in MODALITY_OF_QC_TYPE:
            out.append(_skip(base, f"not sent: {row.qc_type} series (MRIQC's Web-API takes T1w and bold only)"))
        elif row.series_number in blacklisted:
            out.append(_skip(base, "not sent: blacklisted by a reviewer"))
        elif scan_id.is_phantom:
            out.append(_skip(base, "not sent: a phantom (the Web-API collects participants' images)"))
        else:
            out.append(_with_record(base, layout.root, row, scan_id, sent))
    return out


def _skip(candidate: Candidate, why: str, record: WebapiRecord | None = None) -> Candidate:
    return Candidate(candidate.session, candidate.series_number, candidate.tag, candidate.qc_type, record, why)


def _with_record(base: Candidate, root: Path, row: QcSeriesRow, scan_id, sent: Mapping) -> Candidate:
    try:
        record = webapi_record(read_mriqc(root, row.json_path), scan_id, row.qc_type, row.tag)
    except ValueError as exc:
        return _skip(base, f"not sendable: its MRIQC record cannot be used ({exc})")
    if not record.sendable:
        return _skip(base, f"not sendable: {record.why_not}", record)
    done = sent.get((row.series_number, record.md5sum))
    if done is not None:
        return _skip(base, f"already sent on {done.sent_at:%Y-%m-%d %H:%M} UTC (_id {done.api_id or '?'})", record)
    return _skip(base, "", record)


def issues_text(issues: object, prefix: str = "") -> list[str]:
    """Eve's `_issues` ({field: message or {field: ...}}) as 'bids_meta.TaskName: required field'."""
    if isinstance(issues, dict):
        return [line for key, value in issues.items() for line in issues_text(value, f"{prefix}{key}.")]
    if isinstance(issues, list):
        return [line for value in issues for line in issues_text(value, prefix)]
    return [f"{prefix.rstrip('.')}: {issues}" if prefix else str(issues)]


def answer_json(response: requests.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def post_record(http: requests.Session, endpoint: str, token: str, candidate: Candidate) -> Submitted:
    """POST one record; what the server made of it."""
    record = candidate.record
    assert record is not None and not candidate.skip
    url = f"{endpoint}/{record.modality}"
    try:
        body = json.dumps(record.payload, allow_nan=False)
        response = http.post(url, data=body, headers={"Authorization": token, "Content-Type": "application/json"},
                             timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        return Submitted(candidate, "failed", reason=f"{url}: {type(exc).__name__}: {exc}")
    answer = answer_json(response)
    if response.status_code == 201:
        api_id = answer.get("_id")
        return Submitted(candidate, "sent", str(api_id) if isinstance(api_id, str | int) else "",
                         "" if api_id else "the server answered 201 without an _id")
    if response.status_code == 422:
        error = answer.get("_error")
        message = error.get("message") if isinstance(error, dict) else None
        issues = issues_text(answer.get("_issues") or message or " ".join(response.text.split())[:SHOWN_ANSWER])
        return Submitted(candidate, "refused", reason=f"{url} refused it (422): {'; '.join(issues)}")
    text = " ".join(response.text.split())[:SHOWN_ANSWER]
    return Submitted(candidate, "failed", reason=f"{url} answered {response.status_code}: {text}")


def submit(store: MetricStore, http: requests.Session, endpoint: str, token: str, candidate: Candidate,
           clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Submitted:
    """Send one candidate and record it if the server accepted it."""
    done = post_record(http, endpoint, token, candidate)
    if done.status == "sent":
        record = candidate.record
        assert record is not None
        row = WebapiSubmissionRow(id=0, scan_session=candidate.session, series_number=candidate.series_number,
                                  tag=candidate.tag, modality=record.modality, md5sum=record.md5sum,
                                  endpoint=endpoint, api_id=done.api_id,
                                  sent_at=clock().astimezone(UTC).replace(tzinfo=None))
        store.append(WebapiSubmissionRow, candidate.session, [row],
                     unique=lambda r: (r.series_number, r.md5sum, r.endpoint))
        log.info("%s sent to %s: _id %s", candidate.name, endpoint, done.api_id)
    return done
