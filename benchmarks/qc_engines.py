"""The two anatomical QC engines side by side on the Philips MPRAGE (256x256x170, 1 mm) of
../shared/dicom: the built-in one (numpy/scipy) and `qc: {anat_engine: ants}` (ANTs N4 + Atropos).

Run: `.venv/bin/python benchmarks/qc_engines.py` (needs antspyx for the ANTs column: the
`datman-flow[ants]` extra). The series is converted with the project's dcm2niix wrapper, then
each engine measures it in a fresh process, as the QC step calls it (`measure.analyse`), under
the default MRIQC convention; each child reports its wall time and peak resident memory
(`ru_maxrss` of that process alone). Prints a Markdown table: time, memory and the key IQMs,
with the ANTs engine's own steps (built-in brain mask, N4, Atropos). ITK's thread count is set
for both children (`--threads`, default: the cores this process may use); `--runs N` keeps each
engine's fastest run (the figures of a shared machine vary from run to run).
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

from qc import ARCHIVE, SERIES, convert

REPO = Path(__file__).resolve().parents[1]
ENGINES = ("builtin", "ants")
KEY_IQMS = ("cjv", "cnr", "snr_total", "snr_csf", "snr_gm", "snr_wm", "efc", "icvs_csf", "icvs_gm", "icvs_wm",
            "inu_range", "inu_med", "qi_1", "wm2max")

CHILD = """
import json, logging, resource, sys, time
from pathlib import Path
from datman_flow.qc.measure import analyse
from datman_flow.qc.settings import QcSettings
steps = []
class Keep(logging.Handler):
    def emit(self, record):
        steps.append(record.getMessage())
logger = logging.getLogger("datman_flow.qc.ants_engine")
logger.setLevel(logging.INFO)
logger.addHandler(Keep())
started = time.perf_counter()
measured = analyse("anat", Path(sys.argv[1]), QcSettings(anat_engine=sys.argv[2]))
seconds = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_kb": peak_kb, "metrics": measured.result.metrics, "steps": steps}))
"""


def run_engine(engine: str, nifti: Path, threads: int) -> dict:
    """One engine's analysis of ``nifti`` in a fresh interpreter."""
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    done = subprocess.run([sys.executable, "-c", CHILD, str(nifti), engine], capture_output=True, text=True,
                          env=env, cwd=REPO, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {engine} engine failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(value: float) -> str:
    """4 significant digits (trailing zeros kept), tiny values in exponent form."""
    return f"{value:.2e}" if 0 < abs(value) < 0.01 else f"{value:#.4g}".rstrip(".")


def table(figures: dict[str, dict]) -> str:
    """Markdown: one row per figure, one column per engine, and the ANTs engine's change."""
    rows = ["| | built-in | ANTs (N4 + Atropos) | ANTs vs built-in |", "|---|---|---|---|"]
    b, a = figures.get("builtin"), figures.get("ants")

    def line(name: str, get, show=fmt) -> None:
        vb, va = (get(f) if f else None for f in (b, a))
        change = f"{100.0 * (va - vb) / abs(vb):+.0f} %" if vb not in (None, 0.0) and va is not None else ""
        cells = [show(v) if v is not None else "-" for v in (vb, va)]
        rows.append(f"| {name} | {cells[0]} | {cells[1]} | {change} |")

    line("wall time (s)", lambda f: f["seconds"], lambda v: f"{v:.1f}")
    line("peak RSS (GB)", lambda f: f["peak_kb"] / 1024 / 1024, lambda v: f"{v:.2f}")
    for key in KEY_IQMS:
        line(key, lambda f, key=key: f["metrics"][key])
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="ITK threads per child")
    parser.add_argument("--runs", type=int, default=1, help="runs per engine; the fastest is kept")
    parser.add_argument("--engines", default=",".join(ENGINES), help="which engines (comma-separated)")
    parser.add_argument("--archive", type=Path, default=ARCHIVE, help="the Philips archive (philips_ingenia.tar.gz)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not args.archive.exists():
        print(f"{args.archive} not found: the benchmark needs ../shared/dicom", file=sys.stderr)
        return 2
    engines = [e for e in ENGINES if e in args.engines.split(",")]
    number, expected = SERIES["anat"]
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="datman-qc-engines-") as tmp:
        work = Path(tmp)
        with tarfile.open(args.archive) as tar:
            members = [m for m in tar.getmembers() if Path(m.name).name.startswith(f"{number}_")]
            tar.extractall(work, members=members, filter="data")
        nifti = convert(work / "philips_ingenia" / "In", number, expected, work)
        for engine in engines:
            runs = [run_engine(engine, nifti, args.threads) for _ in range(max(args.runs, 1))]
            figures[engine] = min(runs, key=lambda r: r["seconds"])
            print(f"{engine}: {figures[engine]['seconds']:.1f} s, peak {figures[engine]['peak_kb'] / 1024**2:.2f} GB"
                  + "".join(f"; {step}" for step in figures[engine]["steps"]), file=sys.stderr)
    load = os.getloadavg()[0]
    print(f"Philips MPRAGE 256x256x170, {args.threads} ITK thread(s), each engine in a fresh process, "
          f"best of {max(args.runs, 1)}; load average {load:.1f} on {os.cpu_count()} cores at the end\n")
    print(table(figures))
    for step in figures.get("ants", {}).get("steps", []):
        print(f"\n{step}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
