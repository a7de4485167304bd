"""Checking a scan's download against XNAT's listing: the listing itself, extraction with MD5s,
and the `.complete.json` manifest that stamps a verified folder."""
from __future__ import annotations

import hashlib
import json
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from .models import RemoteFile

MANIFEST = ".complete.json"
ZIP_NAME = ".xnat-download.zip"
CHUNK = 1 << 20

Verification = Literal["md5", "size+count only"]


class Failed(Exception):
    """One attempt went wrong; the message says exactly what."""


def verification(expected: list[RemoteFile]) -> Verification:
    """How a download of this listing can be verified: MD5 only when XNAT lists every digest."""
    return "md5" if all(f.digest for f in expected) else "size+count only"


def check_listing(expected: list[RemoteFile]) -> None:
    names = [f.name for f in expected]
    dups = sorted(n for n, count in Counter(names).items() if count > 1)
    if dups:
        raise Failed(f"XNAT lists duplicate file names: {some(dups)}")
    unsafe = [n for n in names if n in ("", ".", "..", MANIFEST, ZIP_NAME)
              or "/" in n or "\\" in n or "\0" in n or len(n.encode("utf-8", "replace")) > 255]
    if unsafe:
        raise Failed(f"XNAT lists unsafe file names: {some([repr(n) for n in unsafe])}")


def extract_verified(zip_path: Path, folder: Path, expected: list[RemoteFile]) -> dict[str, str]:
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
            md5, size = _copy_member(zf, members[name][0], folder / name)
            md5s[name] = md5
            if size != remote.size:
                problems.append(f"size mismatch for {name}: expected {remote.size} bytes, got {size}")
            elif remote.digest and md5 != remote.digest:
                problems.append(f"MD5 mismatch for {name}: expected {remote.digest}, got {md5}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise Failed("; ".join(problems[:3]) + more)
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
