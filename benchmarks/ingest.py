"""Ingest of the Philips session of ../shared/dicom (7,355 files): datman-flow against bare dcm2niix.

Run: `make bench` (or `.venv/bin/python benchmarks/ingest.py [--repeat N]`). Everything is measured
in this one process on this machine; the figures are ratios against the reference runs made here,
never absolute targets. Steps:

1. reference: bare dcm2niix on the flat folder of 7,355 files, with its defaults (uncompressed,
   the figure MANIFEST.md quotes), with `-z y` (its default gzip level 6) and with our flags;
2. pull: the session from the XNAT emulator on 127.0.0.1 (streamed zips, MD5 and count checks);
3. index + tag, and convert (every series tagged, so the same 7 series as the reference);
4. the header-drift check of the session (parameters of every converted series against gold
   standards), as a share of the whole ingest;
5. the session's ingest assets (pull, index, convert, with their checks) as one Dagster run,
   in-process, against the same steps without Dagster: the difference is Dagster's overhead per
   session run. (The QC metrics that follow are measured in benchmarks/qc.py.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "dicom" / "philips_ingenia.tar.gz"
LABEL, PROJECT = "BEN01_PHI_0001_01_01", "BENCH_PHI"
TAGS = """T1: {qc: anat}\nRST: {qc: fmri}\nDTI60: {qc: dwi}\nDTIPH: {qc: ignore}\nFMAP: {qc: ignore}
ASL: {qc: ignore}\nASLSRC: {qc: ignore}\n"""
STUDY = """study: BEN01
xnat: {url: URL, project: BENCH_PHI}
sites:
  PHI:
    tags:
      T1: {match: {SeriesDescription: 'MPRAGE'}}
      RST: {match: {SeriesDescription: '^fcMRI$'}}
      DTI60: {match: {SeriesDescription: '^DTI_S2MB2$'}}
      DTIPH: {match: {SeriesDescription: '^DTIphase'}}
      FMAP: {match: {SeriesDescription: 'Field Mapping'}}
      ASL: {match: {SeriesDescription: '^3DpCASL$'}}
      ASLSRC: {match: {SeriesDescription: 'SOURCE'}}
"""


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - started, value


def bare_dcm2niix(binary: str, source: Path, work: Path, flags: list[str]) -> float:
    out = Path(tempfile.mkdtemp(dir=work))
    seconds, result = timed(subprocess.run, [binary, *flags, "-o", str(out), str(source)], capture_output=True)
    if result.returncode != 0:
        raise SystemExit(f"bare dcm2niix failed: {result.stderr[-500:]}")
    shutil.rmtree(out)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each step; the fastest is reported")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not ARCHIVE.exists():
        print(f"{ARCHIVE} not found: the benchmark needs ../shared/dicom", file=sys.stderr)
        return 2

    import dagster as dg

    from datman_flow.config import load_config
    from datman_flow.defs.runner import run_session
    from datman_flow.dicom.convert import find_dcm2niix
    from datman_flow.dicom.index import index_session
    from datman_flow.dicom.session_convert import convert_session
    from datman_flow.drift import find_gold, promote
    from datman_flow.layout import DataLayout
    from datman_flow.pipeline.drift import check_header_drift
    from datman_flow.pipeline.pull import pull_session
    from datman_flow.pipeline.resolve import resolve_session
    from datman_flow.xnat import XnatClient
    from datman_flow.xnat.emulator import XnatEmulator

    work = Path(tempfile.mkdtemp(prefix="datman-bench-"))
    try:
        with tarfile.open(ARCHIVE) as tar:
            tar.extractall(work, filter="data")
        source = work / "philips_ingenia" / "In"
        (work / "xnat" / PROJECT).mkdir(parents=True)
        os.symlink(source, work / "xnat" / PROJECT / LABEL)
        tool = find_dcm2niix()
        best = lambda fn: min(fn() for _ in range(args.repeat))  # noqa: E731
        figures: dict[str, float | str] = {"dcm2niix": tool.version, "files": len(os.listdir(source))}
        figures["bare_default_s"] = best(lambda: bare_dcm2niix(tool.path, source, work, []))
        figures["bare_gzip6_s"] = best(lambda: bare_dcm2niix(tool.path, source, work, ["-z", "y"]))
        figures["bare_our_flags_s"] = best(lambda: bare_dcm2niix(
            tool.path, source, work, ["-z", "y", f"-{tool.gzip_level}", "-b", "y", "-ba", "y"]))

        with XnatEmulator(work / "xnat", port=0, user="bench", password="bench") as xnat:
            configs = work / "configs"
            (configs / "studies").mkdir(parents=True)
            (configs / "tags.yml").write_text(TAGS)
            (configs / "studies" / "BEN01.yml").write_text(STUDY.replace("URL", xnat.url))
            os.environ.update({"XNAT_USER": "bench", "XNAT_PASS": "bench"})
            config = load_config(configs)
            target = resolve_session(config, LABEL)

            def drift_check(series) -> float:
                """The header-drift check against gold standards promoted from this very session."""
                for s in series:
                    if s.tag and find_gold(configs, "BEN01", "PHI", s.tag) is None:
                        promote(configs, "BEN01", "PHI", s.tag, s.nifti_path, s.dicom_kept, LABEL,
                                s.series_number, tool.version)
                seconds, result = timed(check_header_drift, target, series, configs, lambda tag, session: [])
                assert result.passed and len(result.checked) == 7, result.summary()
                return seconds

            def pull_index_convert(data: Path) -> tuple[float, float, float, float]:
                layout = DataLayout(data)
                t_pull, pulled = timed(pull_session, lambda: XnatClient.from_env(xnat.url), target,
                                       layout.raw_session(LABEL))
                t_index, series = timed(index_session, pulled, target.rules)
                t_conv, done = timed(convert_session, series, target.scan_id, layout, tool)
                assert all(s.conversion_status == "converted" for s in done if s.tag), done
                t_drift = drift_check(done)
                shutil.rmtree(data)
                return t_pull, t_index, t_conv, t_drift

            runs = [pull_index_convert(work / f"data-core-{i}") for i in range(args.repeat)]
            figures["pull_s"] = min(r[0] for r in runs)
            figures["index_tag_s"] = min(r[1] for r in runs)
            figures["convert_s"] = min(r[2] for r in runs)
            figures["drift_check_s"] = min(r[3] for r in runs)
            figures["core_total_s"] = min(sum(r[:3]) for r in runs)

            dagster_times = []
            for i in range(args.repeat):
                with dg.DagsterInstance.ephemeral() as instance:
                    seconds, run = timed(run_session, instance, LABEL, configs, work / f"data-dagster-{i}",
                                         selection=["raw_dicom", "series_index", "nifti"])
                assert run.success, run.error
                dagster_times.append(seconds)
                shutil.rmtree(work / f"data-dagster-{i}")
            figures["dagster_run_s"] = min(dagster_times)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    index_convert = figures["index_tag_s"] + figures["convert_s"]
    figures["index_tag_convert_s"] = index_convert
    figures["ratio_vs_bare_default"] = index_convert / figures["bare_default_s"]
    figures["ratio_vs_bare_gzip6"] = index_convert / figures["bare_gzip6_s"]
    figures["drift_share_of_ingest"] = figures["drift_check_s"] / (figures["core_total_s"] + figures["drift_check_s"])
    # the Dagster run includes the drift check (against the gold standards promoted above), so
    # its overhead is the run minus the three steps and the check
    figures["dagster_overhead_s"] = figures["dagster_run_s"] - figures["core_total_s"] - figures["drift_check_s"]
    for key, value in figures.items():
        print(f"{key:24} {value:.3f}" if isinstance(value, float) else f"{key:24} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
