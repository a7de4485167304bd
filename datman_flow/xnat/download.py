"""Verified scan download: a scan folder exists only when every listed file arrived intact.

The zip is streamed to a temporary folder next to `dest`, extracted member by member while
computing MD5s, checked against XNAT's file listing (names, sizes, digests), stamped with a
`.complete.json` manifest and only then renamed to `dest`. Any failure deletes the temporary
folder and retries the whole scan; after the last attempt the scan is reported 'failed' with
the exact reason. A `dest` whose manifest matches the current listing is not downloaded again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from datman_flow.atomic import apply_umask

from .client import XnatClient
from .errors import XnatAuthError, XnatError
from .models import RemoteFile

log = logging.getLogger(__name__)

MANIFEST = ".complete.json"
CHUNK = 1 << 20
_ZIP_NAME = ".xnat-download.zip"


@dataclass
class ScanDownload:
    scan_id: str
    status: Literal["complete", "failed"]
    reason: str
    files: list[str] = field(default_factory=list)
    n_bytes: int = 0
    seconds: float = 0.0


class _Failed(Exception):
    """One attempt went wrong; the message says exactly what."""


def download_scan(client: XnatClient, experiment_id: str, scan_id: str, dest: Path, *,
                  attempts: int = 3) -> ScanDownload:
    """Download one scan's DICOM files into `dest`, verified, or report why it could not.

    XnatAuthError propagates (no scan can succeed with refused credentials); every other
    problem is retried and, at the end, returned as status 'failed' with its reason.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _remove_leftovers(dest)
    last = "no attempt was made"
    for attempt in range(1, attempts + 1):
        try:
            expected = client.list_files(experiment_id, scan_id)
        except XnatAuthError:
            raise
        except XnatError as exc:
            last = f"could not list the files: {exc}"
            log.warning("scan %s attempt %d/%d: %s", scan_id, attempt, attempts, last)
            continue
        if not expected:
            return _failed(scan_id, f"XNAT lists no DICOM files for scan {scan_id}", started)
        try:
            _check_listing(expected)
        except _Failed as exc:
            return _failed(scan_id, str(exc), started)
        if _manifest_matches(dest, experiment_id, scan_id, expected):
            log.info("scan %s: already complete in %s, skipped", scan_id, dest)
            return ScanDownload(scan_id, "complete", "already complete (manifest matches XNAT)",
                                sorted(f.name for f in expected), 0,
                                time.monotonic() - started)
        if dest.exists():
            shutil.rmtree(dest)  # stale: XNAT's listing changed since it was downloaded
        try:
            n_bytes = _attempt(client, experiment_id, scan_id, dest, expected)
        except _Failed as exc:
            last = str(exc)
            log.warning("scan %s attempt %d/%d failed: %s", scan_id, attempt, attempts, last)
            continue
        seconds = time.monotonic() - started
        log.info("scan %s: %d files, %.1f MB in %.1f s", scan_id, len(expected),
                 n_bytes / 1e6, seconds)
        return ScanDownload(scan_id, "complete", "", sorted(f.name for f in expected),
                            n_bytes, seconds)
    return _failed(scan_id, f"after {attempts} attempts: {last}", started)


def _failed(scan_id: str, reason: str, started: float) -> ScanDownload:
    log.error("scan %s failed: %s", scan_id, reason)
    return ScanDownload(scan_id, "failed", reason, [], 0, time.monotonic() - started)


def _remove_leftovers(dest: Path) -> None:
    """Delete partial folders of crashed runs and a `dest` that has no manifest."""
    for partial in dest.parent.glob(f".{dest.name}.partial-*"):
        shutil.rmtree(partial, ignore_errors=True)
    if dest.exists() and not (dest / MANIFEST).is_file():
        shutil.rmtree(dest)


def _check_listing(expected: list[RemoteFile]) -> None:
    names = [f.name for f in expected]
    dups = sorted(n for n, count in Counter(names).items() if count > 1)
    if dups:
        raise _Failed(f"XNAT lists duplicate file names: {_some(dups)}")
    unsafe = [n for n in names if n in ("", ".", "..", MANIFEST, _ZIP_NAME) or "/" in n or "\\" in n]
    if unsafe:
        raise _Failed(f"XNAT lists unsafe file names: {_some(unsafe)}")


def _attempt(client: XnatClient, experiment_id: str, scan_id: str, dest: Path,
             expected: list[RemoteFile]) -> int:
    tmp = apply_umask(Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent)))
    try:
        zip_path = tmp / _ZIP_NAME
        try:
            with open(zip_path, "wb") as out:
                n_bytes = client.download_files_zip(experiment_id, scan_id, out)
            md5s = _extract_verified(zip_path, tmp, expected)
        except XnatAuthError:
            raise
        except XnatError as exc:
            raise _Failed(str(exc)) from exc
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise _Failed(f"zip stream ended early or is corrupt ({type(exc).__name__}: {exc})") from exc
        except OSError as exc:
            raise _Failed(f"could not write the download next to {dest}: {exc}") from exc
        zip_path.unlink()
        manifest = {
            "experiment_id": experiment_id, "scan_id": scan_id,
            "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": [{"name": f.name, "size": f.size, "md5": md5s[f.name]} for f in expected],
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        return n_bytes
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _extract_verified(zip_path: Path, folder: Path, expected: list[RemoteFile]) -> dict[str, str]:
    """Extract the listed files from the zip into folder; returns name -> md5 or raises _Failed."""
    with zipfile.ZipFile(zip_path) as zf:
        members: dict[str, list[zipfile.ZipInfo]] = {}
        for info in zf.infolist():
            if not info.is_dir():
                members.setdefault(info.filename.rsplit("/", 1)[-1], []).append(info)
        wanted = {f.name: f for f in expected}
        missing = sorted(set(wanted) - set(members))
        if missing:
            raise _Failed(f"{len(missing)} of {len(wanted)} files missing: {_some(missing)}")
        extra = sorted(set(members) - set(wanted))
        if extra:
            raise _Failed(f"{len(extra)} unexpected files in the zip: {_some(extra)}")
        repeated = sorted(n for n, infos in members.items() if len(infos) > 1)
        if repeated:
            raise _Failed(f"{len(repeated)} files appear more than once in the zip: {_some(repeated)}")
        md5s, problems = {}, []
        for name, remote in sorted(wanted.items()):
            md5, size = _copy_member(zf, members[name][0], folder / name)
            md5s[name] = md5
            if size != remote.size:
                problems.append(f"size mismatch for {name}: expected {remote.size} bytes, got {size}")
            elif remote.digest and md5 != remote.digest:
                problems.append(f"MD5 mismatch for {name}: expected {remote.digest}, got {md5}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise _Failed("; ".join(problems[:3]) + more)
    return md5s


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> tuple[str, int]:
    md5 = hashlib.md5()
    size = 0
    with zf.open(info) as src, open(target, "wb") as out:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            md5.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return md5.hexdigest(), size


def _manifest_matches(dest: Path, experiment_id: str, scan_id: str,
                      expected: list[RemoteFile]) -> bool:
    try:
        manifest = json.loads((dest / MANIFEST).read_text())
        recorded = {f["name"]: (int(f["size"]), str(f["md5"])) for f in manifest["files"]}
        same_scan = (manifest["experiment_id"], manifest["scan_id"]) == (experiment_id, scan_id)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not same_scan or set(recorded) != {f.name for f in expected}:
        return False
    for f in expected:
        size, md5 = recorded[f.name]
        if size != f.size or (f.digest and md5 != f.digest):
            return False
        try:
            if (dest / f.name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _some(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
