"""dcm2niix, called with an argument list: one series in, NIfTI + JSON sidecar out.

Outputs are written to a hidden temporary folder beside their destination and moved into
place only when dcm2niix succeeded, read every file it was given and wrote a NIfTI.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from datman_flow.atomic import atomic_path

log = logging.getLogger(__name__)
FOUND_RE = re.compile(r"Found (\d+) DICOM file")
CONVERT_RE = re.compile(r"Convert (\d+) DICOM as")
VERSION_RE = re.compile(r"v\d+\.\d+\.\d+\w*")
DEFAULT_GZIP_LEVEL = 3  # measured: 61 MB in 2.4 s on the Philips session; level 6 gives 60 MB in 6.4 s
TIMEOUT_SECONDS = 1800


class Dcm2niixMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Dcm2niix:
    path: str
    version: str
    gzip_level: int = DEFAULT_GZIP_LEVEL

    def command(self, series_dir: Path, out_dir: Path, stem: str) -> list[str]:
        return [self.path, "-z", "y", f"-{self.gzip_level}", "-b", "y", "-ba", "y",
                "-f", stem, "-o", str(out_dir), str(series_dir)]


def find_dcm2niix(gzip_level: int = DEFAULT_GZIP_LEVEL) -> Dcm2niix:
    """The dcm2niix of the `dcm2niix` PyPI package (falling back to one on PATH)."""
    try:
        import dcm2niix as package

        path = package.bin
    except ImportError:
        path = shutil.which("dcm2niix") or ""
    if not path or not os.access(path, os.X_OK):
        raise Dcm2niixMissing("dcm2niix not found: install the 'dcm2niix' Python package")
    result = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=60, check=False)
    match = VERSION_RE.search(result.stdout + result.stderr)
    return Dcm2niix(path=path, version=match.group(0) if match else "unknown", gzip_level=gzip_level)


@dataclass(frozen=True)
class ConversionOutcome:
    status: str  # converted | failed
    message: str
    nifti_path: str | None = None
    outputs: tuple[str, ...] = ()


def notable_lines(text: str, limit: int = 6) -> str:
    """dcm2niix's errors and warnings, the part an operator needs to read."""
    lines = [ln.strip() for ln in text.splitlines() if re.match(r"\s*(Error|Warning|Unable|Unsupported)", ln)]
    return "; ".join(dict.fromkeys(lines[:limit]))


def remove_previous_outputs(out_dir: Path, stem: str) -> None:
    for path in out_dir.glob(f"{stem}*"):
        if path.is_file() and (path.name.startswith(stem + ".") or path.name.startswith(stem + "_")):
            path.unlink()


def convert_series(tool: Dcm2niix, series_dir: Path, out_dir: Path, stem: str, *,
                   expected_files: int) -> ConversionOutcome:
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{stem}.", dir=out_dir))
    try:
        try:
            result = subprocess.run(tool.command(series_dir, work, stem), capture_output=True, text=True,
                                    timeout=TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            return ConversionOutcome("failed", f"dcm2niix did not finish within {TIMEOUT_SECONDS} s")
        output = result.stdout + result.stderr
        found = FOUND_RE.search(output)
        written = sorted(path for path in work.iterdir() if path.is_file())
        niftis = [path for path in written if path.name.endswith((".nii.gz", ".nii"))]
        problems = notable_lines(output)
        if result.returncode != 0 and not niftis:
            detail = problems or output.strip()[-400:]
            return ConversionOutcome("failed", f"dcm2niix exit {result.returncode}: {detail}")
        if found and int(found.group(1)) < expected_files:
            return ConversionOutcome(
                "failed", f"dcm2niix read {found.group(1)} of {expected_files} DICOM files; {problems}".rstrip("; "))
        converted = sum(int(n) for n in CONVERT_RE.findall(output))
        if niftis and converted < expected_files:
            return ConversionOutcome(
                "failed", f"dcm2niix converted {converted} of {expected_files} DICOM files; {problems}".rstrip("; "))
        if not niftis:
            return ConversionOutcome("failed", f"dcm2niix wrote no NIfTI: {problems or output.strip()[-400:]}")
        remove_previous_outputs(out_dir, stem)
        placed = []
        for path in written:
            target = out_dir / path.name
            os.replace(path, target)
            placed.append(str(target))
        primary = out_dir / f"{stem}.nii.gz"
        nifti = str(primary) if primary.exists() else next(p for p in placed if p.endswith((".nii.gz", ".nii")))
        message = problems if result.returncode == 0 else f"dcm2niix exit {result.returncode}; {problems}"
        return ConversionOutcome("converted", message, nifti_path=nifti, outputs=tuple(placed))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def keep_header_copy(source: Path, target: Path) -> None:
    """Copy one DICOM file of a series (the full header, for later checks), atomically."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
