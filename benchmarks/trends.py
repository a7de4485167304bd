"""The QC trends asset's step on a store of 1,000 synthetic sessions: time of the queries, the
figures and the whole step, and the inline images' size.

Run: `make bench-trends` (or `PYTHONPATH=. .venv/bin/python benchmarks/trends.py`). Three sites
of the repository's SPN01 study, sessions every few days over four years with T1, RST and DTI60
measured, one phantom (T1) in ten, a scanner software upgrade per site, a few outliers flagged.
The store is built in a temporary folder (or --data, built there once and reused). The step is
timed --runs times from scratch (every figure drawn), then again with nothing new (no figure
drawn), then after one new session (its site's figures drawn). matplotlib is imported first:
its import (about 0.6 s) is paid once per run process, whatever the asset.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import matplotlib.figure  # noqa: F401 - imported before timing (once per run process, whatever the asset)

from datman_flow.config import load_config
from datman_flow.layout import DataLayout
from datman_flow.pipeline.trend_data import TREND_METRICS
from datman_flow.pipeline.trends import trends_step
from datman_flow.store import HeaderParameterRow, MetricStore, QcMetricRow, SessionRow
from datman_flow.store.rows import QcFlagRow
from datman_flow.store.trend_queries import metric_history

REPO = Path(__file__).resolve().parents[1]
SITES = ("CMH", "ZHH", "MRC")
TAGS = {"T1": "anat", "RST": "fmri", "DTI60": "dwi"}
TYPICAL = {"snr_total": 12.0, "cnr": 3.0, "cjv": 0.45, "efc": 0.55, "wm2max": 0.7, "fwhm_avg": 3.5, "tsnr": 60.0,
           "fd_mean": 0.2, "dvars_std": 1.2, "aqi": 0.01, "gsr_x": 0.02, "fd_perc": 5.0, "snr_b0": 25.0,
           "dropout_slices": 0.0, "spikes": 0.0}


def add_session(store: MetricStore, i: int, sessions: int, rng: random.Random) -> str:
    """Session number `i` of `sessions` (four years, the sites in turn, one phantom in ten)."""
    site, phantom = SITES[i % len(SITES)], i % 10 == 9
    when = date(2021, 1, 4) + timedelta(days=int(i * 1460 / sessions))
    label = f"SPN01_{site}_PHA_FBN{i:04d}" if phantom else f"SPN01_{site}_{i:04d}_01_01"
    software = "syngo MR E11" if when < date(2023, 1, 1) + timedelta(days=30 * SITES.index(site)) else "E11C"
    store.replace(SessionRow, label, [SessionRow(session=label, study="SPN01", site=site, is_phantom=phantom,
                                                 scan_date=when.strftime("%Y%m%d"), status="ingested")])
    tags = {"T1": "anat"} if phantom else TAGS
    store.replace(HeaderParameterRow, label, [
        HeaderParameterRow(label, "SPN01", site, tag, str(n + 2), json.dumps({"SoftwareVersions": software}))
        for n, tag in enumerate(tags)])
    metrics, flags = [], []
    for n, (tag, kind) in enumerate(tags.items()):
        for metric in TREND_METRICS[kind]:
            value = TYPICAL[metric] * rng.gauss(1.0, 0.08)
            metrics.append(QcMetricRow(label, str(n + 2), tag, metric, value, "bench", datetime(2025, 1, 1)))
            if rng.random() < 0.01:
                flags.append(QcFlagRow(label, str(n + 2), tag, metric, value, "site history"))
    store.replace(QcMetricRow, label, metrics)
    store.replace(QcFlagRow, label, flags)
    return label


def build_store(data: Path, sessions: int, seed: int = 1) -> MetricStore:
    rng, store = random.Random(seed), MetricStore.under(data)
    for i in range(sessions):
        add_session(store, i, sessions, rng)
    return store


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(action) -> tuple[float, float, object]:
    """Wall and CPU seconds (CPU: this process, DuckDB's threads included) of `action()`."""
    started, cpu = time.perf_counter(), cpu_seconds()
    result = action()
    return time.perf_counter() - started, cpu_seconds() - cpu, result


def report(what: str, config, data: Path) -> None:
    wall, cpu, trends = timed(lambda: trends_step(config, DataLayout(data)))
    print(f"{what}: trends_step {wall:.2f} s ({cpu:.2f} s CPU), {len(trends.groups)} figures, "  # type: ignore[attr-defined]
          f"{sum(g.drawn is not None for g in trends.groups)} drawn, "  # type: ignore[attr-defined]
          f"inline {trends.inline_chars() / 1000:.0f} KB, notes: {list(trends.notes)}")  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, help="build (or reuse) the store here instead of a temporary folder")
    args = parser.parse_args()
    config = load_config(REPO / "configs")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        store = MetricStore.under(data)
        if not (data / "store" / "sessions").is_dir():
            wall, _, _ = timed(lambda: build_store(data, args.sessions))
            print(f"store of {args.sessions} sessions built in {wall:.1f} s")
        metrics = sorted({m for kind in TAGS.values() for m in TREND_METRICS[kind]})
        wall, cpu, points = timed(lambda: metric_history(store, ["SPN01"], list(TAGS), metrics))
        print(f"metric_history: {len(points)} points in {wall:.2f} s ({cpu:.2f} s CPU)")  # type: ignore[arg-type]
        for run in range(args.runs):
            shutil.rmtree(data / "trends", ignore_errors=True)
            report(f"cold run {run + 1} (every figure drawn)", config, data)
        report("again, nothing new", config, data)
        label = add_session(store, args.sessions, args.sessions, random.Random(7))
        report(f"after one new session ({label})", config, data)
        for row_type in (SessionRow, HeaderParameterRow, QcMetricRow, QcFlagRow):
            store.replace(row_type, label, [])  # the store as it was (the next run of --data reuses it)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
