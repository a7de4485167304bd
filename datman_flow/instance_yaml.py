"""The Dagster instance's `dagster.yaml` for datman-flow, from `runs.yml`: one source for the run
queue's limits wherever the lab runs (one machine, PostgreSQL, containers).

What it sets (README "Running for a lab / for a consortium"):
- the run queue (`QueuedRunCoordinator`): at most `max_concurrent_runs` runs in progress, at most
  `pulls_per_xnat` of them per XNAT server (the run tag XNAT_TAG, set by the sensor, one limit per
  unique value), one refresh of the study views at a time (REFRESH_TAG), the rest queued in
  `dagster/priority` order;
- the `qc` pool (op granularity): at most `qc_slots` sessions' QC steps at once, by memory;
- run monitoring, so a run whose process died is marked failed (and retried by the sensor)
  instead of staying STARTED for ever;
- storage: the default (SQLite files under DAGSTER_HOME) or PostgreSQL, credentials from the
  environment (PG_ENV), never written in the file;
- the run launcher: local processes, or one Docker container per run (`DockerRunLauncher`,
  deploy/docker-compose.yml), whose stdout/stderr then go to the shared data volume so that the
  UI can show them after the container is gone.

Plain text out (no Dagster import: this is read by the CLI and by the tests, which check it
against Dagster's own schema).
"""

from __future__ import annotations

from typing import Literal

import yaml

from datman_flow.config.runs_block import RUNS_FILE, RunSettings

XNAT_TAG = "datman/xnat"  # run tag: the XNAT server a run pulls from (host[:port])
PRIORITY_TAG = "dagster/priority"  # the run queue takes higher values first
# job tag of refresh_study_views: one at a time. Two at once compute the same views twice; with one
# running, the next waits in the queue and covers every session run that ends meanwhile (after_run.py)
REFRESH_TAG = "datman/refresh"
QC_POOL = "qc"  # the pool of the qc_metrics step
PG_ENV = {"hostname": "DAGSTER_PG_HOST", "port": "DAGSTER_PG_PORT", "username": "DAGSTER_PG_USER",
          "password": "DAGSTER_PG_PASSWORD", "db_name": "DAGSTER_PG_DB"}
PG_SCHEME = "postgresql+psycopg2"
# what a run's container needs from the daemon's environment (DockerRunLauncher passes these on)
RUN_ENV = ("XNAT_USER", "XNAT_PASS", "DATMAN_CONFIG_DIR", "DATMAN_DATA_DIR", "DATMAN_XNAT_URL",
           "DATMAN_PICTURES_URL", "DATMAN_REVIEW_URL", *PG_ENV.values())
DOCKER_NETWORK = "datman"  # deploy/docker-compose.yml names its network and volumes exactly so
DOCKER_VOLUMES = ("datman_data:/data", "datman_configs:/configs:ro")
# a run container's stdout/stderr, where the webserver (which mounts the data volume too) reads them
DOCKER_COMPUTE_LOGS = "/data/state/compute_logs"

Storage = Literal["sqlite", "postgres"]
Launcher = Literal["local", "docker"]


def instance_config(runs: RunSettings, storage: Storage = "sqlite", launcher: Launcher = "local") -> dict:
    config: dict = {
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                            "config": {"dequeue_interval_seconds": 2}},
        "concurrency": {
            "runs": {
                "max_concurrent_runs": runs.max_concurrent_runs,
                "tag_concurrency_limits": [{"key": XNAT_TAG, "value": {"applyLimitPerUniqueValue": True},
                                            "limit": runs.pulls_per_xnat},
                                           {"key": REFRESH_TAG, "limit": 1}],
            },
            "pools": {"granularity": "op", "default_limit": runs.qc_slots},
        },
        "run_monitoring": {"enabled": True, "start_timeout_seconds": 300, "poll_interval_seconds": 30},
        "telemetry": {"enabled": False},
    }
    if storage == "postgres":
        # the driver named: SQLAlchemy 2.1 takes plain `postgresql` for psycopg 3, dagster-postgres brings psycopg2
        config["storage"] = {"postgres": {"postgres_db": {**{key: {"env": var} for key, var in PG_ENV.items()},
                                                          "scheme": PG_SCHEME}}}
    if launcher == "docker":
        config["run_launcher"] = {"module": "dagster_docker", "class": "DockerRunLauncher", "config": {
            "env_vars": list(RUN_ENV), "networks": [DOCKER_NETWORK],
            "container_kwargs": {"volumes": list(DOCKER_VOLUMES)}}}
        config["compute_logs"] = {"module": "dagster.core.storage.local_compute_log_manager",
                                  "class": "LocalComputeLogManager", "config": {"base_dir": DOCKER_COMPUTE_LOGS}}
    return config


def instance_yaml(runs: RunSettings, storage: Storage = "sqlite", launcher: Launcher = "local") -> str:
    head = (f"# dagster.yaml for datman-flow, written by `datman-flow instance yaml --storage {storage} "
            f"--launcher {launcher}`\n# from {RUNS_FILE} and its environment overrides: edit those and "
            "write it again rather than this file.\n")
    return head + yaml.safe_dump(instance_config(runs, storage, launcher), sort_keys=False, width=100)
