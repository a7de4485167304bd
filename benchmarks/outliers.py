"""The QC outlier step of one new session against a store holding 1,000 earlier sessions.

Run: `make bench-outliers` (or `.venv/bin/python benchmarks/outliers.py [--sessions N] [--runs N]
[--store DIR]`). The store is built with synthetic rows written through `MetricStore.replace`,
exactly as the pipeline writes them: per earlier session one `sessions`, one `header_parameters`
(3 series: T1, RST, DTI60, the same scanner software) and one `qc_metrics` file (every metric of
the three series, about 120 rows), all of one study and site (the worst case: the whole history
matches). Then `pipeline.outliers.outlier_step` (read the session's own rows, ONE history query,
the robust statistics, write the flags and check rows) is timed for one new session, median of
`--runs`; the history query alone is timed too. Budget: the whole step under 1 s.

Building 1,000 sessions takes about a minute and a half on 2 cores; `--store DIR` keeps the
store there and reuses it on the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from datman_flow.config import load_config
from datman_flow.layout import DataLayout
from datman_flow.pipeline.outliers import MeasuredSeries, outlier_step, session_history
from datman_flow.pipeline.resolve import resolve_session
from datman_flow.qc.kinds import QC_KINDS
from datman_flow.qc.settings import DEFAULT_QC
from datman_flow.store import HeaderParameterRow, MetricStore, QcMetricRow, SessionRow
from datman_flow.store.qc_queries import HistoryKey

REPO = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 1.0
SOFTWARE = "syngo MR E11"
NEW = "SPN01_CMH_9999_01_01"
SERIES = (("2", "T1", "anat", 64), ("3", "RST", "fmri", 40), ("4", "DTI60", "dwi", 16))  # number, tag, kind, metrics
TYPICAL = {"snr_total": 12.0, "cnr": 3.0, "cjv": 0.4, "efc": 0.55, "fber": 3000.0, "wm2max": 0.7, "fwhm_avg": 3.5,
           "icvs_csf": 0.2, "icvs_gm": 0.45, "icvs_wm": 0.35, "tsnr": 55.0, "fd_mean": 0.2, "fd_perc": 5.0,
           "dvars_std": 1.2, "gsr_x": 0.01, "gsr_y": 0.02, "aor": 0.002, "aqi": 0.01, "dummy_trs": 0.0,
           "snr_b0": 25.0, "n_b0": 2.0, "n_directions": 60.0, "dropout_slices": 0.0, "spikes": 0.0}


def parameters(tag: str) -> str:
    """The recorded parameters of a series as the header check writes them (about 1 KB of JSON;
    slice timing for the EPI series)."""
    epi = tag != "T1"
    values = {"Manufacturer": "Siemens", "ManufacturerModelName": "Prisma_fit", "SoftwareVersions": SOFTWARE,
              "MagneticFieldStrength": 3.0, "ImagingFrequency": 123.25, "EchoTime": 0.03 if epi else 0.00298,
              "RepetitionTime": 2.0 if epi else 2.3, "FlipAngle": 77.0 if epi else 9.0, "SliceThickness": 3.5,
              "SpacingBetweenSlices": 3.5, "AcquisitionMatrix": [64.0, 0.0, 0.0, 64.0], "VoxelSize": [3.5, 3.5, 3.5],
              "NumberOfSlices": 48, "NumberOfVolumes": 240 if tag == "RST" else 1, "PhaseEncodingDirection": "j-",
              "ParallelReductionFactorInPlane": 2, "PixelBandwidth": 2442.0, "EchoTrainLength": 48,
              "ReceiveCoilName": "HeadNeck_64"}
    if epi:
        values["SliceTiming"] = [round((i * 7 % 48) * 2.0 / 48, 4) for i in range(48)]
    return json.dumps(values, sort_keys=True)


def series_metrics(kind: str, n_metrics: int, rng: random.Random) -> dict[str, float]:
    """The kind's key metrics around typical values, then filler metrics up to `n_metrics`."""
    metrics = {name: TYPICAL.get(name, 1.0) * rng.uniform(0.9, 1.1) for name in QC_KINDS[kind].key_metrics}
    metrics.update({f"other_{i}": rng.random() for i in range(n_metrics - len(metrics))})
    return metrics


def write_session(store: MetricStore, label: str, scan_date: str, rng: random.Random) -> dict[str, dict[str, float]]:
    inserted = f"{scan_date[:4]}-{scan_date[4:6]}-{scan_date[6:]} 12:00:00"
    store.replace(SessionRow, label, [SessionRow(session=label, study="SPN01", site="CMH", subject=label.split("_")[2],
                                                 scan_date=scan_date, insert_date=inserted, status="ingested")])
    store.replace(HeaderParameterRow, label, [
        HeaderParameterRow(session=label, study="SPN01", site="CMH", tag=tag, series_number=number,
                           parameters=parameters(tag))
        for number, tag, _, _ in SERIES])
    measured = {number: series_metrics(kind, n, rng) for number, _, kind, n in SERIES}
    when = datetime(2025, 1, 1)
    store.replace(QcMetricRow, label, [
        QcMetricRow(session=label, series_number=number, tag=tag, metric=name, value=value, software_version="bench",
                    computed_at=when, metric_convention=DEFAULT_QC.convention,  # as the QC step records them
                    anat_engine=DEFAULT_QC.anat_engine if kind == "anat" else None)
        for number, tag, kind, _ in SERIES for name, value in measured[number].items()])
    return measured


def build(store: MetricStore, n: int) -> None:
    rng = random.Random(7)
    started = time.perf_counter()
    for i in range(n):
        day = datetime.fromordinal(datetime(2020, 1, 1).toordinal() + i).strftime("%Y%m%d")
        write_session(store, f"SPN01_CMH_{i:04d}_01_01", day, rng)
        if (i + 1) % 100 == 0:
            print(f"  {i + 1} sessions written ({time.perf_counter() - started:.0f} s)", flush=True)


def cpu_seconds() -> float:
    """This process's CPU time, user + system, over all its threads (DuckDB's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def median_seconds(fn, runs: int) -> tuple[float, float, list[float]]:
    """Median wall time, median CPU time, and every run's wall time."""
    times, cpu = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), cpu_seconds()
        fn()
        times.append(time.perf_counter() - started)
        cpu.append(cpu_seconds() - cpu_started)
    return statistics.median(times), statistics.median(cpu), times


def runs_text(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000, help="earlier sessions in the store (default 1000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs; the median is reported (default 5)")
    parser.add_argument("--store", help="data folder to build the store in and reuse (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-outliers-") as tmp:
        root = Path(args.store) if args.store else Path(tmp)
        layout = DataLayout(root)
        store = layout.metric_store
        marker = root / f".bench-outliers-{args.sessions}"
        if not marker.exists():
            print(f"building a store of {args.sessions} earlier sessions in {root} ...")
            build(store, args.sessions)
            marker.touch()
        measured = write_session(store, NEW, "20991231", random.Random(1))
        target = resolve_session(load_config(REPO / "configs", env={}), NEW)
        series = [MeasuredSeries(number, tag, kind, measured[number]) for number, tag, kind, _ in SERIES]  # type: ignore[arg-type]
        keys = [HistoryKey(tag, SOFTWARE, QC_KINDS[kind].key_metrics) for _, tag, kind, _ in SERIES]  # type: ignore[index]
        found = outlier_step(target, layout, series)  # warm-up (views written, imports done)
        assert all(o.n_history == args.sessions for o in found), [o.n_history for o in found]
        query, query_cpu, query_runs = median_seconds(lambda: session_history(store, target, keys), args.runs)
        step, step_cpu, step_runs = median_seconds(lambda: outlier_step(target, layout, series), args.runs)
        print(f"earlier sessions: {args.sessions} ({3 * args.sessions} Parquet files read by the query), "
              f"series compared: {len(series)}, flags: {sum(len(o.flags) for o in found)}")
        print(f"load average over 1 min: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"history query (one per session): median {query:.3f} s (CPU {query_cpu:.3f} s)  "
              f"runs {runs_text(query_runs)}")
        print(f"whole outlier step:              median {step:.3f} s (CPU {step_cpu:.3f} s)  "
              f"runs {runs_text(step_runs)}")
        print(f"budget {BUDGET_SECONDS:.1f} s: the step takes {step / BUDGET_SECONDS:.2f}x of it "
              f"({'within' if step < BUDGET_SECONDS else 'OVER'} budget)")


if __name__ == "__main__":
    main()
