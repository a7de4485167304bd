"""Image-quality metrics of the Philips session of ../shared/dicom: time and peak memory per series.

Run: `make bench-qc` (or `.venv/bin/python benchmarks/qc.py`). The MPRAGE (256x256x170), the
resting BOLD (96x96x63x75, realignment included) and the DTI (128x128x82x17) are converted with
the project's dcm2niix wrapper, then each is measured in a fresh process, which reports the time
and peak resident memory of the metrics, then of metrics plus picture (`measure.analyse` then
`measure.picture`, as the CLI and the pipeline call them: the BOLD picture reuses the metrics'
realigned maps), under the MRIQC convention `--convention` names (default mriqc24, qc/settings.py).
Reference: MRIQC's documentation gives about 40 minutes and 8 GB for one
subject's T1w and BOLD on 10 processes, with FSL, ANTs and AFNI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "dicom" / "philips_ingenia.tar.gz"
SERIES = {"anat": ("1301", 170), "fmri": ("2101", 4725), "dwi": ("2201", 1394)}
TARGET_SECONDS = {"anat": 15.0, "fmri": 30.0, "dwi": 30.0}
MRIQC_T1W_BOLD_SECONDS, MRIQC_T1W_BOLD_GB = 40 * 60, 8.0


def convert(source: Path, number: str, expected: int, work: Path) -> Path:
    from datman_flow.dicom.convert import convert_series, find_dcm2niix

    folder = work / f"series-{number}"
    folder.mkdir()
    for path in source.glob(f"{number}_*.dcm"):
        os.symlink(path, folder / path.name)
    outcome = convert_series(find_dcm2niix(), folder, work / "nii", f"S{number}", expected_files=expected)
    if outcome.status != "converted":
        raise SystemExit(f"conversion of series {number} failed: {outcome.message}")
    return Path(str(outcome.nifti_path))


CHILD = """
import json, resource, sys, time
from pathlib import Path
from datman_flow.qc.measure import analyse, picture
from datman_flow.qc.settings import QcSettings
kind, nifti, png, convention = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
started = time.perf_counter()
measured = analyse(kind, nifti, QcSettings(convention=convention))
seconds = time.perf_counter() - started
metrics_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
picture(kind, nifti, measured, png)
print(json.dumps({"metrics_s": seconds, "with_picture_s": time.perf_counter() - started, "metrics_peak_kb": metrics_kb,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "metrics": measured.result.metrics}))
"""


def measure_in_child(kind: str, nifti: Path, picture: Path, convention: str) -> dict:
    """Time and peak resident memory of one series' metrics (and picture), in a fresh process."""
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(nifti), str(picture), convention],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"qc of {nifti.name} failed: {done.stderr[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--kinds", default="anat,fmri,dwi", help="which series to measure (comma-separated)")
    parser.add_argument("--convention", default="mriqc24", choices=("mriqc24", "mriqc22"),
                        help="the MRIQC convention the metrics follow (qc/settings.py; default mriqc24)")
    args = parser.parse_args()
    if not ARCHIVE.exists():
        print(f"{ARCHIVE} not found: the benchmark needs ../shared/dicom", file=sys.stderr)
        return 2
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="datman-qc-bench-") as tmp:
        work = Path(tmp)
        with tarfile.open(ARCHIVE) as tar:
            tar.extractall(work, filter="data")
        source = work / "philips_ingenia" / "In"
        kinds = [k for k in ("anat", "fmri", "dwi") if k in args.kinds.split(",")]
        niftis = {kind: convert(source, *SERIES[kind], work) for kind in kinds}
        for kind in kinds:
            out = measure_in_child(kind, niftis[kind], work / f"{kind}.png", args.convention)
            gb = {key: round(out[key] / 1024 / 1024, 2) for key in ("metrics_peak_kb", "peak_kb")}
            figures[kind] = {"metrics_s": round(out["metrics_s"], 2), "with_picture_s": round(out["with_picture_s"], 2),
                             "metrics_peak_gb": gb["metrics_peak_kb"], "peak_gb": gb["peak_kb"],
                             "target_s": TARGET_SECONDS[kind], "metrics": out["metrics"]}
            print(f"{kind:5} {args.convention} metrics {out['metrics_s']:6.1f} s (target {TARGET_SECONDS[kind]:.0f} s, "
                  f"peak memory {gb['metrics_peak_kb']:.2f} GB), with picture {out['with_picture_s']:6.1f} s "
                  f"(peak memory {gb['peak_kb']:.2f} GB)")
    if "anat" in figures and "fmri" in figures:
        total = figures["anat"]["with_picture_s"] + figures["fmri"]["with_picture_s"]  # type: ignore[index]
        print(f"T1w + BOLD: {total:.1f} s against MRIQC's ~{MRIQC_T1W_BOLD_SECONDS / 60:.0f} min and "
              f"{MRIQC_T1W_BOLD_GB:.0f} GB on 10 processes: {MRIQC_T1W_BOLD_SECONDS / total:.0f}x faster")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
