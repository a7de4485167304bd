"""Plain values returned by the XNAT client."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Experiment:
    """One imaging session (an XNAT experiment) as listed by XNAT."""

    id: str
    label: str
    project: str
    date: str
    xsi_type: str
    insert_date: str
    uri: str
    last_modified: str = ""  # XNAT's meta last_modified (server-local time), '' when not listed

    @property
    def inserted_at(self) -> datetime | None:
        """`insert_date` parsed (XNAT's `YYYY-MM-DD HH:MM:SS.mmm`, server-local time), or None."""
        for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
            try:
                return datetime.strptime(self.insert_date, fmt)
            except ValueError:
                continue
        return None


@dataclass(frozen=True)
class Scan:
    """One scan (series) of an experiment."""

    id: str
    type: str
    series_description: str
    quality: str
    xsi_type: str


@dataclass(frozen=True)
class RemoteFile:
    """One file of a scan resource; `digest` is the MD5 hex XNAT reports, None if it has none."""

    name: str
    size: int
    uri: str
    digest: str | None
