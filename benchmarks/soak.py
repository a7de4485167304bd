"""The soak test: the real Dagster daemon with PostgreSQL against the XNAT emulator serving small
synthetic sessions arriving in bursts, with injected XNAT faults.

Run: `make bench-soak` (or `PYTHONPATH=. .venv/bin/python benchmarks/soak.py [--sessions 200]
[--burst 20] [--burst-every 60] [--max-runs N] [--pulls-per-xnat N] [--qc-memory-gb G]
[--qc-gb-per-session G] [--no-faults] [--tick-sessions 10000] [--tick-only | --no-tick]
[--deadline-minutes 180] [--keep] [--json]`).

Setup, in a temporary folder: a throw-away PostgreSQL server (tests/postgres_server.py), one
database per phase; DAGSTER_HOME with `instance_yaml(runs, "postgres", "local")`, `runs` from a
copy of configs/ whose runs.yml holds the limits used; a workspace.yaml loading
`datman_flow.definitions`; the XNAT emulator in this process; `dagster-daemon run` as a
subprocess (its runs are local processes; the sensor `new_xnat_sessions` runs by default).

Phase 1: the sessions (benchmarks/soak_sessions.py) arrive `--burst` at a time every
`--burst-every` seconds; before each burst, XNAT faults are armed (503s, a cut zip, a corrupt
member, a short listing, a drip; a restart during the middle burst). Measured: sessions/hour
(first arrival to the last session's run finished), peaks of runs in progress, pulls
(`raw_dicom` steps, from the event log in PostgreSQL, and zip streams the emulator served) and
`qc_metrics` steps against their limits, memory of the daemon and its runs (RSS, every 0.5 s),
the runs of each session and every run's final status, each session's rows in the metric store,
and the daemon's own sensor ticks. Phase 2: soak_tick.py (10,000 sessions listed).

Exit 1 when a limit was exceeded, a session has no successful run, a run was left unfinished,
or a row is duplicated or missing; 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak_checks  # noqa: E402
import soak_sessions  # noqa: E402
import soak_tick  # noqa: E402
from soak_probe import MemoryProbe  # noqa: E402

from datman_flow.config.runs_block import RUNS_FILE, RunSettings  # noqa: E402
from datman_flow.instance_yaml import instance_config  # noqa: E402
from datman_flow.xnat.emulator import XnatEmulator  # noqa: E402

SERIES_PER_SESSION = 3
SENSOR = "new_xnat_sessions"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--burst", type=int, default=20, help="sessions arriving at once")
    p.add_argument("--burst-every", type=float, default=60.0, help="seconds between bursts")
    p.add_argument("--max-runs", type=int, help="max_concurrent_runs (default: RunSettings')")
    p.add_argument("--pulls-per-xnat", type=int)
    p.add_argument("--qc-memory-gb", type=float)
    p.add_argument("--qc-gb-per-session", type=float)
    p.add_argument("--no-faults", action="store_true")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--tick-sessions", type=int, default=10_000)
    p.add_argument("--tick-only", action="store_true", help="only phase 2, the sensor tick")
    p.add_argument("--no-tick", action="store_true", help="only phase 1, the soak")
    p.add_argument("--profile", action="store_true", help="cProfile the ticks of phase 2 (files in the work folder)")
    p.add_argument("--deadline-minutes", type=float, default=180.0,
                   help="from the first arrival; 200 sessions took 105 min on a 2-core machine")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def run_settings(args: argparse.Namespace) -> RunSettings:
    given = {"max_concurrent_runs": args.max_runs, "pulls_per_xnat": args.pulls_per_xnat,
             "qc_memory_gb": args.qc_memory_gb, "qc_gb_per_session": args.qc_gb_per_session}
    return RunSettings.model_validate({k: v for k, v in given.items() if v is not None})


def postgres_instance_yaml(runs: RunSettings) -> str:
    """dagster.yaml with PostgreSQL storage and local runs; the driver named (SQLAlchemy 2.1 would
    take psycopg 3, which is not installed; main's instance_yaml names it too)."""
    config = instance_config(runs, "postgres", "local")
    config["storage"]["postgres"]["postgres_db"].setdefault("scheme", "postgresql+psycopg2")
    return yaml.safe_dump(config, sort_keys=False)


def soak_configs(work: Path, runs: RunSettings) -> Path:
    config_dir = work / "configs"
    shutil.copytree(REPO / "configs", config_dir)
    (config_dir / RUNS_FILE).write_text(yaml.safe_dump(runs.model_dump(), sort_keys=False))
    return config_dir


class Faults:
    """XNAT faults armed before each burst, at rates a real server might show, counted."""

    def __init__(self, emu: XnatEmulator, seed: int, enabled: bool) -> None:
        self.emu, self.rng, self.enabled = emu, random.Random(seed), enabled
        self.armed: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.armed[name] = self.armed.get(name, 0) + n

    def before_burst(self, index: int, bursts: int) -> None:
        if not self.enabled:
            return
        emu, rng = self.emu, self.rng
        emu.fail_next(2, 503)
        self._count("503 answers", 2)
        emu.cut_next_zip(rng.randint(20_000, 200_000))
        self._count("zip streams cut")
        if index % 2 == 0:
            emu.corrupt_next_file(1)
            self._count("corrupt members (MD5 mismatch)")
        if index % 3 == 1:
            emu.shorten_next_listing(1)
            self._count("short listings")
        if index % 3 == 2:
            emu.drip_next(0.02, seconds=3.0, kind="zip")
            self._count("dripped zips (3 s)")
        if index == bursts // 2:
            emu.restart(20.0, refused=8.0)
            self._count("restarts (8 s refused, then 503 to 20 s)")


def wait_done(instance, labels: list[str], deadline: float) -> bool:
    """Every session has a successful run and no run is queued or in progress."""
    import dagster as dg

    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    while time.time() < deadline:
        done = {r.tags.get("dagster/partition") for r in instance.get_runs(
            filters=dg.RunsFilter(job_name="ingest_session", statuses=[dg.DagsterRunStatus.SUCCESS]))}
        busy = instance.get_runs_count(filters=dg.RunsFilter(statuses=active))
        if set(labels) <= done and busy == 0:
            return True
        time.sleep(5)
    return False


def soak_phase(args: argparse.Namespace, work: Path, server, runs: RunSettings, config_dir: Path) -> dict:
    import dagster as dg

    pg_env = server.create_database("soak")
    home, data, xnat_dir = work / "dagster_home", work / "data", work / "xnat"
    home.mkdir()
    (home / "dagster.yaml").write_text(postgres_instance_yaml(runs))
    (work / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": "datman_flow.definitions", "location_name": "datman_flow"}}]}))
    sessions = soak_sessions.soak_sessions(args.sessions)
    labels = [s.label for s in sessions]
    start = time.time()
    soak_sessions.stage(sessions, xnat_dir)
    print(f"soak: {len(sessions)} sessions written in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    emu = XnatEmulator(xnat_dir).start()
    env = {**os.environ, **pg_env, "DAGSTER_HOME": str(home), "DATMAN_CONFIG_DIR": str(config_dir),
           "DATMAN_DATA_DIR": str(data), "XNAT_USER": "admin", "XNAT_PASS": "admin", "DATMAN_XNAT_URL": emu.url,
           "DATMAN_SETTLE_MINUTES": "0", "PYTHONPATH": str(REPO)}
    daemon_bin = Path(sys.executable).parent / "dagster-daemon"
    log = open(work / "daemon.log", "wb")
    daemon = subprocess.Popen([str(daemon_bin), "run", "-w", str(work / "workspace.yaml")], env=env, cwd=work,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    probe = MemoryProbe(daemon.pid).start()
    faults = Faults(emu, args.seed, not args.no_faults)
    saved = {k: os.environ.get(k) for k in [*pg_env, "DAGSTER_HOME"]}
    os.environ.update({**pg_env, "DAGSTER_HOME": str(home)})
    instance = dg.DagsterInstance.get()
    try:
        bursts = [sessions[i:i + args.burst] for i in range(0, len(sessions), args.burst)]
        first_arrival = time.time()
        deadline = first_arrival + args.deadline_minutes * 60
        for index, burst in enumerate(bursts):
            if index:
                time.sleep(max(0.0, first_arrival + index * args.burst_every - time.time()))
            faults.before_burst(index, len(bursts))
            for session in burst:
                soak_sessions.arrive(session, xnat_dir)
            print(f"soak: burst {index + 1}/{len(bursts)} arrived at +{time.time() - first_arrival:.0f} s; "
                  f"zip streams in flight {emu.downloads.in_flight()}", file=sys.stderr, flush=True)
        finished = wait_done(instance, labels, deadline)
        time.sleep(40)  # the judging sensors write each session's health after its run, and ask for a refresh
        finished = wait_done(instance, labels, deadline) and finished  # that refresh, done
        memory = probe.stop()
        ended = time.time()
        facts = soak_checks.read_runs(instance, ended)
        store = soak_checks.check_store(data, labels, SERIES_PER_SESSION)
        ticks = instance.get_ticks(
            next(s for s in instance.all_instigator_state() if s.name == SENSOR).instigator_origin_id,
            next(s for s in instance.all_instigator_state() if s.name == SENSOR).selector_id, limit=100_000)
    finally:
        probe.stop()
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=10)
        log.close()
        emu.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    last_end = facts.last_end or ended
    hours = (last_end - first_arrival) / 3600
    no_success = sorted(label for label in labels if "SUCCESS" not in facts.per_label.get(label, []))
    unfinished = sum(n for status, n in facts.statuses.items() if status not in ("SUCCESS", "FAILURE", "CANCELED"))
    durations = sorted((t.end_timestamp or t.timestamp) - t.timestamp for t in ticks if t.end_timestamp)
    peaks = emu.downloads.peaks()
    result = {
        "sessions": len(labels), "finished_in_deadline": finished,
        "wall_minutes": round((last_end - first_arrival) / 60, 1),
        "sessions_per_hour": round(len(labels) / hours, 1) if hours > 0 else None,
        "limits": {"max_concurrent_runs": runs.max_concurrent_runs, "pulls_per_xnat": runs.pulls_per_xnat,
                   "qc_slots": runs.qc_slots},
        "peak_runs_in_progress": soak_checks.peak_overlap(facts.runs),
        "peak_ingest_runs": soak_checks.peak_overlap(facts.ingest_runs),
        "peak_refresh_runs": soak_checks.peak_overlap(facts.refresh_runs), "refresh_runs": len(facts.refresh_runs),
        "views_refreshed_after_last_run": max((start for start, _ in facts.refresh_runs), default=0.0) >= last_end,
        "peak_pulls_event_log": soak_checks.peak_overlap(facts.pulls),
        "peak_pull_sessions_emulator": peaks.sessions, "peak_zip_streams_emulator": peaks.streams,
        "zip_streams_served": peaks.total,
        "peak_qc_steps": soak_checks.peak_overlap(facts.qc),
        "peak_memory_mb": round(memory.total_bytes / 2**20), "peak_run_process_mb": round(memory.run_bytes / 2**20),
        "peak_processes": memory.processes, "memory_samples": memory.samples,
        "runs_by_status": dict(facts.statuses), "failed_runs": facts.failed,
        "ingest_runs": sum(len(v) for v in facts.per_label.values()),
        "sessions_without_success": no_success, "runs_unfinished": unfinished,
        "store_missing": store.missing, "store_duplicated": store.duplicated,
        "store_status": dict(store.status), "store_health": dict(store.health),
        "faults_armed": faults.armed,
        "daemon_ticks": len(durations),
        "daemon_tick_median_s": round(durations[len(durations) // 2], 3) if durations else None,
        "daemon_tick_max_s": round(durations[-1], 3) if durations else None,
    }
    result["failures"] = soak_failures(result)
    return result


def soak_failures(r: dict) -> list[str]:
    lim = r["limits"]
    bad = []
    for key, limit in (("peak_runs_in_progress", lim["max_concurrent_runs"]),
                       ("peak_ingest_runs", lim["pulls_per_xnat"]), ("peak_refresh_runs", 1),
                       ("peak_pulls_event_log", lim["pulls_per_xnat"]),
                       ("peak_pull_sessions_emulator", lim["pulls_per_xnat"]), ("peak_qc_steps", lim["qc_slots"])):
        if r[key] > limit:
            bad.append(f"{key} {r[key]} > {limit}")
    if r["sessions_without_success"]:
        bad.append(f"{len(r['sessions_without_success'])} session(s) without a successful run")
    if not r["views_refreshed_after_last_run"]:
        bad.append("the study views were not refreshed after the last session run")
    if r["runs_unfinished"]:
        bad.append(f"{r['runs_unfinished']} run(s) left unfinished")
    if r["store_missing"] or r["store_duplicated"]:
        bad.append(f"store: {len(r['store_missing'])} missing, {len(r['store_duplicated'])} duplicated")
    return bad


def print_soak(r: dict) -> None:
    lim = r["limits"]
    rows = [
        ("sessions (bursts)", f"{r['sessions']}"),
        ("wall time, first arrival to last run finished", f"{r['wall_minutes']} min"),
        ("sessions/hour", f"{r['sessions_per_hour']}"),
        ("peak runs in progress / max_concurrent_runs",
         f"{r['peak_runs_in_progress']} / {lim['max_concurrent_runs']}"),
        ("peak session runs (one XNAT) / pulls_per_xnat", f"{r['peak_ingest_runs']} / {lim['pulls_per_xnat']}"),
        ("peak pulls (raw_dicom steps, event log) / pulls_per_xnat",
         f"{r['peak_pulls_event_log']} / {lim['pulls_per_xnat']}"),
        ("peak sessions downloading (emulator) / pulls_per_xnat",
         f"{r['peak_pull_sessions_emulator']} / {lim['pulls_per_xnat']} ({r['peak_zip_streams_emulator']} zip streams, "
         f"{r['zip_streams_served']} served)"),
        ("peak qc_metrics steps / qc pool", f"{r['peak_qc_steps']} / {lim['qc_slots']}"),
        ("refreshes of the study views: runs, peak at once / 1, one after the last session run",
        f"{r['refresh_runs']}, {r['peak_refresh_runs']} / 1, {'yes' if r['views_refreshed_after_last_run'] else 'no'}"),
        ("peak memory, daemon + code server + runs (RSS)",
         f"{r['peak_memory_mb']} MB ({r['peak_processes']} processes)"),
        ("largest run process (RSS)", f"{r['peak_run_process_mb']} MB"),
        ("runs by final status (all jobs)", ", ".join(f"{k} {v}" for k, v in sorted(r["runs_by_status"].items()))),
        ("ingest runs (retries included)", f"{r['ingest_runs']}"),
        ("sessions without a successful run (lost)", f"{len(r['sessions_without_success'])}"),
        ("runs left queued or in progress", f"{r['runs_unfinished']}"),
        ("store rows missing / duplicated", f"{len(r['store_missing'])} / {len(r['store_duplicated'])}"),
        ("sessions in the store by status", ", ".join(f"{k} {v}" for k, v in sorted(r["store_status"].items()))),
        ("faults armed", ", ".join(f"{k} {v}" for k, v in r["faults_armed"].items()) or "none"),
        ("daemon's sensor ticks: count, median, max", f"{r['daemon_ticks']}, {r['daemon_tick_median_s']} s, "
                                                      f"{r['daemon_tick_max_s']} s"),
    ]
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")
    for line in r["failed_runs"]:
        print(f"failed run: {line}")
    for line in r["failures"]:
        print(f"FAIL: {line}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.postgres_server import PostgresUnavailable, start_server

    runs = run_settings(args)
    work = Path(tempfile.mkdtemp(prefix="datman-soak-"))
    out: dict = {"limits_used": runs.model_dump()}
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        print(f"soak: cannot run: {exc}", file=sys.stderr)
        return 1
    try:
        config_dir = soak_configs(work, runs)
        if not args.tick_only:
            out["soak"] = soak_phase(args, work, server, runs, config_dir)
        if not args.no_tick:
            times = soak_tick.tick_phase(work, config_dir, server.create_database("tick"), postgres_instance_yaml(runs),
                                         args.tick_sessions,
                                         work / "tick-profile" if args.profile else None)
            out["tick"] = [{**asdict(t), "own": t.own} for t in times]
    finally:
        server.stop()
        if args.keep:
            print(f"soak: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print("limits: " + ", ".join(f"{k} {v}" for k, v in out["limits_used"].items()))
        if "soak" in out:
            print_soak(out["soak"])
        for t in out.get("tick", []):
            print(f"sensor tick, {args.tick_sessions} listed, {t['name']}: {t['total']:.3f} s total, "
                  f"{t['listing']:.3f} s XNAT's listing, {t['own']:.3f} s own work, {t['requests']} run requests")
    failed = bool(out.get("soak", {}).get("failures"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
