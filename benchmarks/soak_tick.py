"""The soak test's second phase: the sensor `new_xnat_sessions` with 10,000 sessions listed on
XNAT, evaluated directly on a PostgreSQL Dagster instance (`dg.build_sensor_context`).

Three ticks: (a) the first, which sees all of them (a backfill: one run request each), (b) a
steady tick after it (nothing new), (c) a tick after a burst of 20 new sessions among them. Each
is timed whole and for the time spent waiting for XNAT's listing (the client's
`list_experiments`, HTTP and JSON included); the tick's own work is the difference.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from datman_flow.defs.resources import DatmanSettings, XnatResource
from datman_flow.defs.sensors import new_xnat_sessions
from datman_flow.xnat.client import XnatClient
from datman_flow.xnat.emulator import XnatEmulator

PROJECT = "SPINS_CMH"
BURST = 20


@dataclass
class TickTime:
    name: str
    total: float
    listing: float
    requests: int  # run requests the tick made

    @property
    def own(self) -> float:
        return self.total - self.listing


@contextlib.contextmanager
def timed_listing(spent: list[float]) -> Iterator[None]:
    """Adds the seconds each XnatClient.list_experiments takes to `spent`."""
    original = XnatClient.list_experiments

    def timed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    XnatClient.list_experiments = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        XnatClient.list_experiments = original  # type: ignore[method-assign]


def write_listing(xnat_dir: Path, first: int, count: int) -> None:
    """`count` minimal session folders (one empty scan folder each): listed, never pulled."""
    (xnat_dir / "SPINS_ZHH").mkdir(parents=True, exist_ok=True)  # the study's other site, empty
    for n in range(first, first + count):
        (xnat_dir / PROJECT / f"SPN01_CMH_{n:05d}_01_01" / "2-Sag_T1_BRAVO").mkdir(parents=True, exist_ok=True)


def evaluate(name: str, instance: dg.DagsterInstance, resources: dict, cursor: str | None,
             profile: Path | None) -> tuple[TickTime, str | None]:
    spent: list[float] = []
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    profiler = cProfile.Profile() if profile else None
    with timed_listing(spent):
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        result = new_xnat_sessions(context)
        if profiler:
            profiler.disable()
        total = time.perf_counter() - start
    if profiler and profile:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
        profile.with_name(f"{profile.name}-{name[0]}.txt").write_text(text.getvalue())
    requests = len(result.run_requests or []) if isinstance(result, dg.SensorResult) else 0
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:  # as the daemon would
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        cursor = result.cursor
    else:
        cursor = context.cursor
    return TickTime(name, total, sum(spent), requests), cursor


def tick_phase(work: Path, config_dir: Path, pg_env: dict[str, str], dagster_yaml: str, count: int,
               profile: Path | None = None) -> list[TickTime]:
    """The three ticks on a fresh instance (DAGSTER_HOME `work/tick_home`, database in `pg_env`)."""
    home = work / "tick_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(dagster_yaml)
    xnat_dir = work / "tick_xnat"
    start = time.perf_counter()
    write_listing(xnat_dir, 1, count)
    print(f"tick phase: {count} session folders written in {time.perf_counter() - start:.1f} s", file=sys.stderr,
          flush=True)
    saved = {key: os.environ.get(key) for key in [*pg_env, "DATMAN_XNAT_URL"]}
    with XnatEmulator(xnat_dir) as emu:
        os.environ.update(pg_env)
        os.environ["DATMAN_XNAT_URL"] = emu.url
        try:
            instance = dg.DagsterInstance.from_config(str(home))
            resources = {"datman": DatmanSettings(config_dir=str(config_dir), data_dir=str(work / "tick_data"),
                                                  settle_minutes=0),
                         "xnat": XnatResource(user="admin", password="admin")}
            times = []
            tick, cursor = evaluate("first tick (all new)", instance, resources, None, profile)
            times.append(tick)
            tick, cursor = evaluate("steady tick (nothing new)", instance, resources, cursor, profile)
            times.append(tick)
            write_listing(xnat_dir, count + 1, BURST)
            tick, cursor = evaluate(f"tick after a burst of {BURST}", instance, resources, cursor, profile)
            times.append(tick)
            instance.dispose()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return times
