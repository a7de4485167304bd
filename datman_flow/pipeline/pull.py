"""Pulling a session's DICOM from XNAT: every scan complete and verified, or recorded as failed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from datman_flow.layout import DataLayout
from datman_flow.pipeline import persist
from datman_flow.pipeline.locks import session_lock
from datman_flow.pipeline.resolve import SessionTarget
from datman_flow.records import PulledScan, PulledSession
from datman_flow.safe_paths import remove_tree
from datman_flow.xnat import XnatBadResponse, XnatClient, fetch_session

log = logging.getLogger(__name__)

# Scans fetched at once: while one waits on the network another hashes and writes files. Two
# suit a 2-core machine (measured: 15% faster than one against a separate XNAT process).
DEFAULT_WORKERS = 2
# times the session's listings are asked for when XNAT answers them incomplete (rows missing,
# totalRecords still counting them: its database timed out) or garbled: a blip must not fail
# the run, whose retry by the sensor waits 10 minutes (seen in benchmarks/soak.py)
LISTING_ASKS = 3


class SessionNotOnXnat(LookupError):
    pass


def find_experiment(client: XnatClient, project: str, label: str):
    for experiment in client.list_experiments(project):
        if experiment.label == label:
            return experiment
    raise SessionNotOnXnat(f"session {label!r} is not in XNAT project {project!r}")


def pull_session(client_factory: Callable[[], XnatClient], target: SessionTarget, raw_dir: Path,
                 workers: int = DEFAULT_WORKERS) -> PulledSession:
    """Download every scan into raw_dir/<scan id>/, a few at a time. A scan that cannot be fetched
    completely is recorded as failed (and never appears as a folder). An incomplete or garbled
    listing of the session is asked for again (LISTING_ASKS in all); listing errors, refused
    credentials and an unreachable XNAT propagate (the run fails and can be retried)."""
    project = target.site.xnat_project
    with client_factory() as client:
        for ask in range(1, LISTING_ASKS + 1):
            try:
                experiment = find_experiment(client, project, target.label)
                scans = client.list_scans(experiment.id)
                break
            except XnatBadResponse as exc:
                if ask == LISTING_ASKS:
                    raise
                log.warning("%s: XNAT's listing was refused (%s); asking again (%d of %d)", target.label, exc,
                            ask + 1, LISTING_ASKS)
    downloads = fetch_session(client_factory, experiment.id, [scan.id for scan in scans], raw_dir, workers=workers,
                              require_digest=target.study.xnat.require_digest)
    pulled = tuple(
        PulledScan(scan_id=scan.id, description=scan.series_description, status=result.status,
                   message=result.reason, directory=str(raw_dir / scan.id) if result.status == "complete" else "",
                   n_files=len(result.files), n_bytes=result.n_bytes, seconds=result.seconds,
                   verified=result.verified or "")
        for scan, result in zip(scans, downloads))
    return PulledSession(session=target.label, xnat_project=project, xnat_id=experiment.id,
                         insert_date=experiment.insert_date, raw_dir=str(raw_dir), scans=pulled,
                         scan_date=experiment.date)


def pull_step(target: SessionTarget, layout: DataLayout, client_factory: Callable[[], XnatClient]) -> PulledSession:
    """The session recorded as `ingesting`, then pulled; a pull that fails is recorded as
    `failed` with the reason before the error propagates."""
    with session_lock(layout, target.label, "the pull"):
        persist.record_session(layout, persist.session_row(target, None, "ingesting"))
        try:
            pulled = pull_session(client_factory, target, layout.raw_session(target.label))
        except BaseException as exc:  # an interrupt too: the session must not stay `ingesting`
            reason = f"pull failed: {exc}" if isinstance(exc, Exception) else f"pull interrupted ({type(exc).__name__})"
            persist.record_session(layout, persist.session_row(target, None, "failed", reason))
            raise
        prune_vanished_scans(Path(pulled.raw_dir), {scan.scan_id for scan in pulled.scans})
        return pulled


def prune_vanished_scans(raw_dir: Path, listed: set[str]) -> list[str]:
    """Remove the folders of scans XNAT no longer lists (deleted there since an earlier pull),
    only inside the session's raw folder; hidden work folders are the download's business."""
    gone = sorted(p.name for p in raw_dir.iterdir() if not p.name.startswith(".") and p.name not in listed) \
        if raw_dir.is_dir() else []
    for name in gone:
        remove_tree(raw_dir / name, raw_dir)
        log.warning("scan folder %s removed: the scan is no longer on XNAT", raw_dir / name)
    return gone
