"""Verified scan download: a scan folder exists only when every listed file arrived intact.

The zip is streamed (at most `zip_bound` bytes) to a temporary folder next to `dest`, extracted
member by member (none past its listed size) while computing MD5s, checked against XNAT's file
listing (names, sizes, digests where XNAT lists them), stamped with a `.complete.json` manifest
and only then renamed to `dest`. Any failure deletes the temporary folder and retries the whole
scan, within the scan's deadline; at the end the scan is reported 'failed' with the exact
reason. A `dest` whose manifest matches the current listing is not downloaded again.

The scan ID and `dest`'s name must be safe path components (safe_paths), and nothing is ever
removed outside `dest.parent`, the session's raw folder.
"""
from __future__ import annotations

import logging
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from datman_flow.atomic import apply_umask
from datman_flow.safe_paths import UnsafePath, remove_tree, safe_component

from .client import XnatClient
from .deadline import Deadline
from .errors import XnatAuthError, XnatError, XnatNotFound
from .models import RemoteFile
from .verify import (
    MANIFEST,
    ZIP_NAME,
    Failed,
    Verification,
    check_listing,
    extract_verified,
    manifest_matches,
    verification,
    write_manifest,
    zip_bound,
)

log = logging.getLogger(__name__)

SCAN_TIMEOUT = 3600.0  # seconds: one scan, all its attempts included


@dataclass
class ScanDownload:
    scan_id: str
    status: Literal["complete", "failed"]
    reason: str
    files: list[str] = field(default_factory=list)
    n_bytes: int = 0
    seconds: float = 0.0
    verified: Verification | None = None  # how a complete scan was checked; None when failed


def download_scan(client: XnatClient, experiment_id: str, scan_id: str, dest: Path, *,
                  attempts: int = 3, require_digest: bool = False,
                  scan_timeout: float = SCAN_TIMEOUT) -> ScanDownload:
    """Download one scan's DICOM files into `dest`, verified, or report why it could not.

    `require_digest`: refuse a scan for which XNAT lists no MD5 digests (else it is verified by
    size and count only, recorded in `verified` and logged as a warning). `scan_timeout`: the
    wall-clock limit of the whole scan, every attempt and request included.
    XnatAuthError propagates (no scan can succeed with refused credentials); every other
    problem is retried and, at the end, returned as status 'failed' with its reason.
    """
    started = time.monotonic()
    dest = Path(dest)
    try:
        safe_component(scan_id, "XNAT scan ID")
        safe_component(dest.name, "scan folder name")
    except UnsafePath as exc:
        return _failed(scan_id, str(exc), started)
    deadline = Deadline(scan_timeout, f"scan {scan_id}'s deadline", "scan_timeout")
    root = dest.parent  # the session's raw folder: nothing outside it is ever removed
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(dest, root)
    last = "no attempt was made"
    for attempt in range(1, attempts + 1):
        if deadline.expired():  # the last error names the deadline when it was cut off by it
            return _failed(scan_id, last if str(deadline) in last else
                           f"not complete within {deadline} ({attempt - 1} attempts; last: {last})", started)
        try:
            expected = client.list_files(experiment_id, scan_id, deadline=deadline)
        except XnatAuthError:
            raise
        except XnatNotFound as exc:
            return _failed(scan_id, _gone(client, experiment_id, scan_id, f"files listing: {exc}", deadline),
                           started)
        except XnatError as exc:
            last = f"could not list the files: {exc}"
            log.warning("scan %s attempt %d/%d: %s", scan_id, attempt, attempts, last)
            continue
        if not expected:
            return _failed(scan_id, _gone(client, experiment_id, scan_id,
                                          f"XNAT lists no DICOM files for scan {scan_id}", deadline), started)
        try:
            check_listing(expected)
        except Failed as exc:
            return _failed(scan_id, str(exc), started)
        verified = verification(expected)
        if verified != "md5":
            missing = sum(not f.digest for f in expected)
            if require_digest:
                return _failed(scan_id, f"MD5 digests are required (require_digest) but XNAT lists none for "
                                        f"{missing} of {len(expected)} files of scan {scan_id}", started)
            log.warning("scan %s: XNAT lists no MD5 digest for %d of %d files: verified by size and "
                        "count only", scan_id, missing, len(expected))
        if manifest_matches(dest, experiment_id, scan_id, expected):
            log.info("scan %s: already complete in %s, skipped", scan_id, dest)
            return ScanDownload(scan_id, "complete", "already complete (manifest matches XNAT)",
                                sorted(f.name for f in expected), 0, time.monotonic() - started, verified)
        remove_tree(dest, root)  # stale: XNAT's listing changed since it was downloaded
        try:
            n_bytes = _attempt(client, experiment_id, scan_id, dest, expected, verified, deadline)
        except XnatNotFound as exc:
            return _failed(scan_id, _gone(client, experiment_id, scan_id, f"zip download: {exc}", deadline),
                           started)
        except Failed as exc:
            last = str(exc)
            log.warning("scan %s attempt %d/%d failed: %s", scan_id, attempt, attempts, last)
            continue
        seconds = time.monotonic() - started
        log.info("scan %s: %d files, %.1f MB in %.1f s (verified: %s)", scan_id, len(expected),
                 n_bytes / 1e6, seconds, verified)
        return ScanDownload(scan_id, "complete", "", sorted(f.name for f in expected), n_bytes, seconds, verified)
    return _failed(scan_id, f"after {attempts} attempts: {last}", started)


def _failed(scan_id: str, reason: str, started: float) -> ScanDownload:
    log.error("scan %s failed: %s", scan_id, reason)
    return ScanDownload(scan_id, "failed", reason, [], 0, time.monotonic() - started)


def _gone(client: XnatClient, experiment_id: str, scan_id: str, what: str, deadline: Deadline) -> str:
    """The reason for a scan whose files are not there: did the scan itself vanish from XNAT
    since it was listed? (Asked again: one more request, only in this case.)"""
    try:
        listed = any(scan.id == scan_id for scan in client.list_scans(experiment_id, deadline=deadline))
    except XnatAuthError:
        raise
    except XnatError as exc:
        return f"{what} (listing the scans of {experiment_id} again failed too: {exc})"
    if listed:
        return what if what.startswith("XNAT lists no") else f"XNAT has no DICOM files for scan {scan_id} ({what})"
    return f"scan {scan_id} vanished from XNAT between the listing and the download ({what})"


def _remove_leftovers(dest: Path, root: Path) -> None:
    """Delete partial folders of crashed runs, and a `dest` that has no manifest or is a link."""
    for partial in root.glob(f".{dest.name}.partial-*"):
        _discard(partial, root)
    if dest.is_symlink() or (dest.exists() and not (dest / MANIFEST).is_file()):
        remove_tree(dest, root)


def _discard(path: Path, root: Path) -> None:
    try:
        remove_tree(path, root)
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


def _attempt(client: XnatClient, experiment_id: str, scan_id: str, dest: Path, expected: list[RemoteFile],
             verified: Verification, deadline: Deadline) -> int:
    root = dest.parent
    tmp = apply_umask(Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=root)))
    try:
        zip_path = tmp / ZIP_NAME
        try:
            with open(zip_path, "wb") as out:
                n_bytes = client.download_files_zip(experiment_id, scan_id, out, max_bytes=zip_bound(expected),
                                                    deadline=deadline)
            md5s = extract_verified(zip_path, tmp, expected, deadline)
        except (XnatAuthError, XnatNotFound):
            raise
        except XnatError as exc:
            raise Failed(str(exc)) from exc
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise Failed(f"zip stream ended early or is corrupt ({type(exc).__name__}: {exc})") from exc
        except OSError as exc:
            raise Failed(f"could not write the download next to {dest}: {exc}") from exc
        remove_tree(zip_path, root)
        write_manifest(tmp, experiment_id, scan_id, expected, md5s, verified)
        remove_tree(dest, root)
        tmp.rename(dest)
        return n_bytes
    finally:
        _discard(tmp, root)
