"""Checking a scan's download against XNAT's listing: the listing itself, the zip's size bound,
bounded extraction with MD5s, and the `.complete.json` manifest that stamps a verified folder.

Nothing XNAT sends is trusted to be as large as it says: the zip stream may be at most
`zip_bound(listing)` bytes, and no member is read past its listed size (+1 byte, to tell).
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from .deadline import Deadline
from .models import RemoteFile

MANIFEST = ".complete.json"
ZIP_NAME = ".xnat-download.zip"
CHUNK = 1 << 20

Verification = Literal["md5", "size+count only"]

# A zip member costs its local header (30 bytes + name + zip64 extra), a data descriptor (up to
# 24) and a central directory entry (46 + name + extra): 4 KiB allows member paths of ~1.9 KiB
# (XNAT's are `label/scans/ID-description/resources/DICOM/files/NAME`). 1% covers deflate's
# worst case (stored blocks: 5 bytes per 64 KiB), 1 MiB the end records and anything else.
ZIP_ENTRY_OVERHEAD = 4096
ZIP_FIXED_OVERHEAD = 1 << 20
MEMBER_MARGIN = 1  # read one byte past a member's listed size: enough to know it is larger


class Failed(Exception):
    """One attempt went wrong; the message says exactly what."""


def verification(expected: list[RemoteFile]) -> Verification:
    """How a download of this listing can be verified: MD5 only when XNAT lists every digest."""
    return "md5" if all(f.digest for f in expected) else "size+count only"


def zip_bound(expected: list[RemoteFile]) -> int:
    """The most bytes a zip of these files can take (generous, finite)."""
    total = sum(f.size for f in expected)
    return total + total // 100 + len(expected) * ZIP_ENTRY_OVERHEAD + ZIP_FIXED_OVERHEAD


def check_listing(expected: list[RemoteFile]) -> None:
    names = [f.name for f in expected]
    dups = sorted(n for n, count in Counter(names).items() if count > 1)
    if dups:
        raise Failed(f"XNAT lists duplicate file names: {some(dups)}")
    unsafe = [n for n in names if n in ("", ".", "..", MANIFEST, ZIP_NAME)
              or "/" in n or "\\" in n or "\0" in n or len(n.encode("utf-8", "replace")) > 255]
    if unsafe:
        raise Failed(f"XNAT lists unsafe file names: {some([repr(n) for n in unsafe])}")


def extract_verified(zip_path: Path, folder: Path, expected: list[RemoteFile],
                     deadline: Deadline | None = None) -> dict[str, str]:
    """Extract the listed files from the zip into folder; returns name -> md5 or raises Failed."""
    with zipfile.ZipFile(zip_path) as zf:
        members: dict[str, list[zipfile.ZipInfo]] = {}
        for info in zf.infolist():
            if not info.is_dir():
                members.setdefault(info.filename.rsplit("/", 1)[-1], []).append(info)
        wanted = {f.name: f for f in expected}
        missing = sorted(set(wanted) - set(members))
        if missing:
            raise Failed(f"{len(missing)} of {len(wanted)} files missing: {some(missing)}")
        extra = sorted(set(members) - set(wanted))
        if extra:
            raise Failed(f"{len(extra)} unexpected files in the zip: {some(extra)}")
        repeated = sorted(n for n, infos in members.items() if len(infos) > 1)
        if repeated:
            raise Failed(f"{len(repeated)} files appear more than once in the zip: {some(repeated)}")
        md5s, problems = {}, []
        for name, remote in sorted(wanted.items()):
            if deadline is not None and deadline.expired():
                raise Failed(f"not complete within {deadline}: {len(md5s)} of {len(wanted)} files extracted")
            info = members[name][0]
            if info.file_size > remote.size:
                raise Failed(f"member {name} exceeds its listed size of {remote.size} bytes")
            md5, size = _copy_member(zf, info, folder / name, remote.size + MEMBER_MARGIN)
            if size > remote.size:
                raise Failed(f"member {name} exceeds its listed size of {remote.size} bytes")
            md5s[name] = md5
            if size != remote.size:
                problems.append(f"size mismatch for {name}: expected {remote.size} bytes, got {size}")
            elif remote.digest and md5 != remote.digest:
                problems.append(f"MD5 mismatch for {name}: expected {remote.digest}, got {md5}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise Failed("; ".join(problems[:3]) + more)
    return md5s


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int) -> tuple[str, int]:
    """Copy at most `limit` bytes of the member to target; (md5 hex, bytes copied)."""
    md5 = hashlib.md5()
    size = 0
    with zf.open(info) as src, open(target, "wb") as out:
        while size < limit:
            chunk = src.read(min(CHUNK, limit - size))
            if not chunk:
                break
            md5.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return md5.hexdigest(), size


def write_manifest(folder: Path, experiment_id: str, scan_id: str, expected: list[RemoteFile],
                   md5s: dict[str, str], verified: Verification) -> None:
    manifest = {
        "experiment_id": experiment_id, "scan_id": scan_id,
        "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verified": verified,
        "files": [{"name": f.name, "size": f.size, "md5": md5s[f.name]} for f in expected],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))


def manifest_matches(dest: Path, experiment_id: str, scan_id: str, expected: list[RemoteFile]) -> bool:
    """Whether `dest` holds a verified download of exactly this listing (MD5s against XNAT's
    digests where it lists them, sizes on disk)."""
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


def some(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
