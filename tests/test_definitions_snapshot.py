"""A snapshot of the code location: asset keys, checks, jobs, sensors and resources. A change
to any of them shows in review as a change to tests/snapshots/definitions.json; refresh it
with `UPDATE_SNAPSHOTS=1 pytest tests/test_definitions_snapshot.py` when the change is meant."""

from __future__ import annotations

import json
import os
from pathlib import Path

from datman_flow.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe() -> dict[str, object]:
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    assets = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string()):
        partitions = spec.partitions_def
        assets[spec.key.to_user_string()] = {
            "group": spec.group_name,
            "deps": sorted(d.asset_key.to_user_string() for d in spec.deps),
            "partitions": getattr(partitions, "name", None) or (type(partitions).__name__ if partitions else None),
            "kinds": sorted(spec.kinds),
        }
    checks = {}
    for key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        spec = graph.get_check_spec(key)
        checks[f"{key.asset_key.to_user_string()}:{key.name}"] = {"blocking": spec.blocking,
                                                                 "description": spec.description}
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue
        jobs[job.name] = sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
    sensors = {s.name: {"type": type(s).__name__, "jobs": sorted(t.job_name for t in s.targets),  # []: no runs
                        "default_status": s.default_status.value,
                        "minimum_interval_seconds": s.minimum_interval_seconds,
                        "resources": sorted(s.required_resource_keys)}
               for s in sorted(repo.sensor_defs, key=lambda s: s.name)}
    return {"assets": assets, "checks": checks, "jobs": jobs, "sensors": sensors,
            "resources": sorted(repo.get_top_level_resources())}


def test_definitions_match_the_snapshot():
    current = json.dumps(describe(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), f"no snapshot yet: run with UPDATE_SNAPSHOTS=1 to write {SNAPSHOT.name}"
    assert current == SNAPSHOT.read_text(), (
        "the Definitions changed (assets, checks, jobs, sensors or resources): if that is meant, refresh the "
        "snapshot with UPDATE_SNAPSHOTS=1 and let the diff of tests/snapshots/definitions.json show it in review")
