"""Pulling a session's DICOM from XNAT: every scan complete and verified, or recorded as failed."""

from __future__ import annotations

import logging
from pathlib import Path

from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.records import PulledScan, PulledSession
from datman_flow.xnat import XnatClient, XnatError, download_scan

log = logging.getLogger(__name__)


class SessionNotOnXnat(LookupError):
    pass


def find_experiment(client: XnatClient, project: str, label: str):
    for experiment in client.list_experiments(project):
        if experiment.label == label:
            return experiment
    raise SessionNotOnXnat(f"session {label!r} is not in XNAT project {project!r}")


def pull_session(client: XnatClient, target: SessionTarget, raw_dir: Path) -> PulledSession:
    """Download every scan into raw_dir/<scan id>/. A scan that cannot be fetched completely is
    recorded as failed (and never appears as a folder); listing errors propagate."""
    project = target.site.xnat_project
    experiment = find_experiment(client, project, target.label)
    raw_dir.mkdir(parents=True, exist_ok=True)
    pulled = []
    for scan in client.list_scans(experiment.id):
        dest = raw_dir / scan.id
        try:
            result = download_scan(client, experiment.id, scan.id, dest)
        except XnatError as exc:  # one scan's trouble is recorded; the listing worked, so go on
            pulled.append(PulledScan(scan.id, scan.series_description, "failed", str(exc), str(dest)))
            continue
        pulled.append(PulledScan(
            scan_id=scan.id, description=scan.series_description, status=result.status,
            message=result.reason, directory=str(dest), n_files=len(result.files),
            n_bytes=result.n_bytes, seconds=result.seconds))
    return PulledSession(session=target.label, xnat_project=project, xnat_id=experiment.id,
                         insert_date=experiment.insert_date, raw_dir=str(raw_dir), scans=tuple(pulled),
                         scan_date=experiment.date)
