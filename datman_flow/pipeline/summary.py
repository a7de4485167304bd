"""Readable markdown and text tables of a session, for the Dagster UI and the terminal."""

from __future__ import annotations

import os
from collections.abc import Sequence

from datman_flow.checks.expected_series import ExpectedSeriesResult
from datman_flow.records import PulledSession, SeriesRecord


def cell(value: object) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def pull_table(pulled: PulledSession) -> str:
    rows = [(s.scan_id, s.description, s.status, s.n_files, f"{s.n_bytes / 1e6:.1f}", f"{s.seconds:.1f}", s.message)
            for s in pulled.scans]
    return markdown_table(["scan", "description", "download", "files", "MB", "s", "problem"], rows)


def tag_or_reason(record: SeriesRecord) -> str:
    return record.tag or f"— ({record.untagged_reason})"


def index_table(series: Sequence[SeriesRecord]) -> str:
    rows = [(r.series_number, r.description, tag_or_reason(r), r.n_files, r.n_frames, r.image_type,
             ", ".join(r.bad_files[:3])) for r in series]
    return markdown_table(["series", "description", "tag", "files", "frames", "ImageType", "bad files"], rows)


def conversion_table(series: Sequence[SeriesRecord]) -> str:
    rows = [(r.series_number, r.description, tag_or_reason(r), r.n_files, r.conversion_status,
             ", ".join(os.path.basename(p) for p in r.outputs if p.endswith((".nii.gz", ".nii"))),
             r.conversion_message) for r in series]
    return markdown_table(["series", "description", "tag", "files", "conversion", "NIfTI", "message"], rows)


def check_table(result: ExpectedSeriesResult) -> str:
    rows = [("PASS" if r.passed else "FAIL", r.tag, r.expected, r.found, r.detail, ", ".join(r.series))
            for r in result.rows]
    text = markdown_table(["", "tag", "expected", "found", "detail", "series"], rows)
    if result.untagged:
        text += "\n\nUntagged series:\n\n" + markdown_table(
            ["series", "description", "reason"],
            [(r.series_number, r.description, r.untagged_reason) for r in result.untagged])
    if result.failed_downloads:
        text += "\n\nFailed downloads:\n\n" + markdown_table(
            ["scan", "description", "reason"],
            [(r.scan_id, r.description, r.download_message) for r in result.failed_downloads])
    return text
