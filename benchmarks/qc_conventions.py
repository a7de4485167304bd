"""Every T1w metric of the Philips MPRAGE of ../shared/dicom under both MRIQC conventions, from one
segmentation (so the differences are the conventions' alone): the table of docs/metrics_anat.md.

Run: `.venv/bin/python benchmarks/qc_conventions.py [--json out.json]`. The MPRAGE is converted
with the project's dcm2niix wrapper (as benchmarks/qc.py does); `anat.anat_inputs` draws the masks
and maps once (mriqc24's hat), mriqc22's hat leaves the rotation mask out, and `anat.iqms` measures
each. Prints a markdown table: metric, mriqc24, mriqc22, the relative difference.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tarfile
import tempfile
from pathlib import Path

from qc import ARCHIVE, SERIES, convert


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.3g}" if abs(value) >= 1e5 or abs(value) < 1e-3 else f"{value:.4g}"


def table(m24: dict[str, float], m22: dict[str, float]) -> str:
    names = [k for k in m24 if not k.startswith(("summary", "size_", "spacing_"))]
    names += [k for k in m24 if k.startswith("summary")]
    rows = ["| metric | mriqc24 | mriqc22 | 24 vs 22 |", "|---|---|---|---|"]
    for name in names:
        new, old = m24[name], m22[name]
        diff = "0" if new == old else ("n/a (22: 0)" if old == 0 else f"{(new - old) / abs(old) * 100:+.1f} %")
        rows.append(f"| `{name}` | {fmt(new)} | {fmt(old)} | {diff} |")
    return "\n".join(rows)


def main() -> int:
    from datman_flow.qc import anat
    from datman_flow.qc.settings import QcSettings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, help="also write both conventions' metrics here")
    args = parser.parse_args()
    if not ARCHIVE.exists():
        print(f"{ARCHIVE} not found: the benchmark needs ../shared/dicom", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="datman-conventions-") as tmp:
        work = Path(tmp)
        with tarfile.open(ARCHIVE) as tar:
            tar.extractall(work, filter="data")
        nifti = convert(work / "philips_ingenia" / "In", *SERIES["anat"], work)
        inputs = anat.anat_inputs(nifti, QcSettings(convention="mriqc24"))
    old = dataclasses.replace(inputs, hat=anat.hat_mask(inputs.head, inputs.seg.brain, inputs.rot))
    m24, m22 = anat.iqms(inputs, "mriqc24"), anat.iqms(old, "mriqc22")
    print(table(m24, m22))
    print(f"\nhat voxels: {int(inputs.hat.sum())} (mriqc24), {int(old.hat.sum())} (mriqc22); "
          f"artifact voxels {int(inputs.art.sum())}")
    if args.json:
        args.json.write_text(json.dumps({"mriqc24": m24, "mriqc22": m22}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
