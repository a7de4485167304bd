"""dcm2niix, called with an argument list: one series in, NIfTI + JSON sidecar out.

Outputs are written to a hidden work folder beside their destination (dicom/workdir.py) and
moved into place only when dcm2niix exited 0 within its deadline, read and converted every file
it was given, and wrote the image sets of one series, each with its sidecar (dicom/outputs.py).
Anything else is a failed conversion, with the reason, and nothing is placed: a scan holding two
series, or a series some of whose files dcm2niix could not use, is for a person to look at, not
to be measured as if it were whole.

dcm2niix runs in its own process group under a deadline (`Dcm2niix.timeout_seconds`); on
timeout the whole group (dcm2niix and any pigz it started) is killed and the reason recorded.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from datman_flow.atomic import atomic_path
from datman_flow.dicom.outputs import IMAGE_SUFFIXES, output_problems
from datman_flow.dicom.workdir import work_folder

log = logging.getLogger(__name__)
FOUND_RE = re.compile(r"Found (\d+) DICOM file")
CONVERT_RE = re.compile(r"Convert (\d+) DICOM as")
VERSION_RE = re.compile(r"v\d+\.\d+\.\d+\w*")
DEFAULT_GZIP_LEVEL = 3  # measured: 61 MB in 2.4 s on the Philips session; level 6 gives 60 MB in 6.4 s
TIMEOUT_SECONDS = 1800.0
KILL_WAIT_SECONDS = 10.0
# dcm2niix's exit codes (console/nii_dicom_batch.h)
EXIT_MEANINGS = {
    1: "unspecified error", 2: "no valid DICOM found", 4: "corrupt DICOM file", 5: "input folder invalid",
    6: "output folder invalid", 7: "output folder read-only", 8: "some files converted, some failed",
    9: "rename error", 10: "incomplete volumes found", 11: "nothing converted", 12: "invalid option",
}


class Dcm2niixMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Dcm2niix:
    path: str
    version: str
    gzip_level: int = DEFAULT_GZIP_LEVEL
    timeout_seconds: float = TIMEOUT_SECONDS

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


def run_with_deadline(command: list[str], timeout: float) -> tuple[int | None, str]:
    """(exit code, stdout and stderr) of `command` run in a new process group; (None, output so
    far) when it outlived `timeout` and the group was killed."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)  # before it is reaped, so the group ID cannot name anyone else
        try:
            output, _ = process.communicate(timeout=KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:  # a child that left the group still holds the pipe
            process.wait()
            output = ""
        return None, output
    except BaseException:  # interrupted: take dcm2niix down with us
        _kill_group(process.pid)
        process.wait()
        raise


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def check_run(code: int | None, output: str, written: list[Path], stem: str, expected_files: int,
              timeout: float) -> str | None:
    """Why this run of dcm2niix is not one complete conversion of the series; None when it is."""
    problems = notable_lines(output)
    if code is None:
        return f"dcm2niix did not finish within {timeout:g} s: killed; {problems}".rstrip("; ")
    niftis = [path for path in written if path.name.endswith(IMAGE_SUFFIXES)]
    if code != 0:
        detail = problems or output.strip()[-400:]
        made = f"; it wrote {', '.join(p.name for p in niftis)} (not kept)" if niftis else ""
        return f"dcm2niix exit {code} ({EXIT_MEANINGS.get(code, 'error')}): {detail}{made}"
    found = FOUND_RE.search(output)
    if found and int(found.group(1)) < expected_files:
        return f"dcm2niix read {found.group(1)} of {expected_files} DICOM files; {problems}".rstrip("; ")
    converted = sum(int(n) for n in CONVERT_RE.findall(output))
    if niftis and converted < expected_files:
        return f"dcm2niix converted {converted} of {expected_files} DICOM files; {problems}".rstrip("; ")
    if not niftis:
        return f"dcm2niix wrote no NIfTI: {problems or output.strip()[-400:]}"
    wrong = output_problems(stem, [path.name for path in written])
    return "; ".join(wrong) + " (not kept)" if wrong else None


def convert_series(tool: Dcm2niix, series_dir: Path, out_dir: Path, stem: str, *,
                   expected_files: int) -> ConversionOutcome:
    with work_folder(out_dir, stem) as work:
        code, output = run_with_deadline(tool.command(series_dir, work, stem), tool.timeout_seconds)
        written = sorted(path for path in work.iterdir() if path.is_file() and not path.name.startswith("."))
        failure = check_run(code, output, written, stem, expected_files, tool.timeout_seconds)
        if failure is not None:
            return ConversionOutcome("failed", failure)
        remove_previous_outputs(out_dir, stem)
        placed = []
        for path in written:
            target = out_dir / path.name
            os.replace(path, target)
            placed.append(str(target))
    primary = out_dir / f"{stem}.nii.gz"
    nifti = str(primary) if primary.exists() else next(p for p in placed if p.endswith(IMAGE_SUFFIXES))
    return ConversionOutcome("converted", notable_lines(output), nifti_path=nifti, outputs=tuple(placed))


def keep_header_copy(source: Path, target: Path) -> None:
    """Copy one DICOM file of a series (the full header, for later checks), atomically."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
