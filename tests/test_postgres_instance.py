"""Dagster's instance on a real PostgreSQL server (Debian's package, a throw-away cluster on
127.0.0.1, tests/postgres_server.py): the sensor, session runs (their QC step in the `qc` pool,
whose slots live in the database) and the study assets; then a lab's history moved from the
default SQLite instance to PostgreSQL without re-ingesting anything."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import dagster as dg
import pytest

from datman_flow.config import load_config
from datman_flow.defs.resources import DatmanSettings
from datman_flow.defs.runner import run_session
from datman_flow.defs.study_assets import protocol_compliance, sessions_board
from datman_flow.defs.trend_assets import qc_trends
from datman_flow.instance_yaml import PRIORITY_TAG, QC_POOL, XNAT_TAG, instance_yaml
from datman_flow.xnat.emulator import XnatEmulator

from pipeline_helpers import CONFIGS, PHANTOM, copy_session, sample_template
from postgres_server import PostgresUnavailable, start_server
from test_sensor import tick

pytestmark = pytest.mark.slow
SECOND = "SPN01_CMH_PHA_FBN0002"
SESSION_ASSETS = ("raw_dicom", "series_index", "nifti", "qc_metrics", "session_review", "bids_export")


@pytest.fixture(scope="module")
def postgres():
    pytest.importorskip("dagster_postgres", reason="the postgres extra is not installed (pip install "
                                                   "'datman-flow[postgres]'; `make setup` does)")
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, postgres):
    """Two small sessions on the emulator, the repository's configs, and a function that makes a
    DAGSTER_HOME: SQLite (the default) or a new PostgreSQL database."""
    root = tmp_path_factory.mktemp("pg_lab")
    template = sample_template(root / "template", [PHANTOM])
    for label in (PHANTOM, SECOND):
        copy_session(template, root / "xnat", "SPINS_CMH", PHANTOM, as_label=label)
    mp = pytest.MonkeyPatch()
    runs = load_config(CONFIGS, env={}).runs

    def home(storage: str) -> str:
        folder = root / f"home_{storage}_{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        if storage == "postgres":
            for key, value in postgres.create_database(folder.name).items():
                mp.setenv(key, value)
        (folder / "dagster.yaml").write_text(instance_yaml(runs, storage))
        return str(folder)

    with XnatEmulator(root / "xnat", port=0, user="u", password="p") as xnat:
        for key, value in {"DATMAN_XNAT_URL": xnat.url, "XNAT_USER": "u", "XNAT_PASS": "p"}.items():
            mp.setenv(key, value)
        yield root, xnat, home
    mp.undo()


def ingest_what_the_sensor_asks(instance: dg.DagsterInstance, settings: DatmanSettings, data_dir):
    """One sensor tick, its partitions added and its runs executed as the daemon would launch them."""
    result, cursor = tick(instance, settings)
    requests = [r for r in result.run_requests if r.job_name == "ingest_session"]
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    runs = [run_session(instance, r.partition_key, CONFIGS, data_dir, tags=dict(r.tags)) for r in requests]
    return requests, runs, cursor


def test_sensor_session_runs_and_study_assets_on_postgresql(lab):
    root, xnat, home = lab
    data = root / "data_pg"
    settings = DatmanSettings(config_dir=str(CONFIGS), data_dir=str(data), settle_minutes=0)
    with dg.DagsterInstance.from_config(home("postgres")) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        requests, runs, cursor = ingest_what_the_sensor_asks(instance, settings, data)
        assert sorted(r.partition_key for r in requests) == [PHANTOM, SECOND]
        server = xnat.url.split("//", 1)[1]
        assert all(r.tags[XNAT_TAG] == server and r.tags[PRIORITY_TAG] == "10" for r in requests)
        assert all(run.success for run in runs), [run.error for run in runs]
        # the study assets, on the same instance
        assert dg.materialize([protocol_compliance, qc_trends, sessions_board], instance=instance,
                              resources={"datman": settings}).success
        # the next tick reads the runs back from PostgreSQL (the retry book's cursor moves past them)
        result, later = tick(instance, settings, cursor)
        assert isinstance(result, dg.SkipReason) and "no new sessions (2 listed" in result.skip_message
        assert '"runs_after"' in later

        records = instance.get_run_records(filters=dg.RunsFilter(tags={XNAT_TAG: server}))
        assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == [PHANTOM, SECOND]
        assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
        for asset in SESSION_ASSETS:
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {PHANTOM, SECOND}, asset
        for asset in ("protocol_compliance", "qc_trends", "sessions_board"):
            assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None
        # the qc pool's slots are in the database: sized by runs.yml, every slot given back
        pool = instance.event_log_storage.get_concurrency_info(QC_POOL)
        assert pool.slot_count == load_config(CONFIGS, env={}).runs.qc_slots
        assert pool.claimed_slots == [] and pool.pending_steps == []
        assert sorted(instance.get_dynamic_partitions("sessions")) == [PHANTOM, SECOND]


def test_moving_from_sqlite_to_postgresql_keeps_history_and_ingests_nothing_again(lab):
    root, xnat, home = lab
    data = root / "data_move"
    settings = DatmanSettings(config_dir=str(CONFIGS), data_dir=str(data), settle_minutes=0)
    old_home, new_home = home("sqlite"), home("postgres")
    with dg.DagsterInstance.from_config(old_home) as old:
        requests, runs, cursor = ingest_what_the_sensor_asks(old, settings, data)
        assert len(runs) == 2 and all(run.success for run in runs)
        old_runs = {r.dagster_run.run_id: len(old.all_logs(r.dagster_run.run_id)) for r in old.get_run_records()}
    # the sensor's cursor as the daemon keeps it, set the way an operator would
    dagster = [sys.executable, "-m", "dagster", "sensor", "cursor", "-m", "datman_flow.definitions", "new_xnat_sessions",
               "--set", cursor]
    done = subprocess.run(dagster, capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, "DAGSTER_HOME": old_home})
    assert done.returncode == 0, done.stderr
    cli = [sys.executable, "-m", "datman_flow.cli", "instance", "move", "--from", old_home, "--to", new_home]
    done = subprocess.run(cli, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"moved {len(old_runs)} run(s)" in done.stdout and "2 session partition(s), 1 sensor state(s)" in done.stdout
    with dg.DagsterInstance.from_config(new_home) as new:
        assert type(new.run_storage).__name__ == "PostgresRunStorage"
        moved = {r.dagster_run.run_id: len(new.all_logs(r.dagster_run.run_id)) for r in new.get_run_records()}
        assert moved == old_runs  # every run, every event
        for asset in SESSION_ASSETS:
            assert new.get_materialized_partitions(dg.AssetKey(asset)) == {PHANTOM, SECOND}, asset
        [state] = new.all_instigator_state()
        assert state.instigator_data.cursor == cursor
        # the sensor goes on from the moved cursor: nothing is asked for again
        result, _ = tick(new, settings, state.instigator_data.cursor)
        assert isinstance(result, dg.SkipReason) and "no new sessions" in result.skip_message
    again = subprocess.run(cli, capture_output=True, text=True, check=False, timeout=300)
    assert again.returncode == 0 and f"moved 0 run(s) with 0 event(s) ({len(old_runs)} already there)" in again.stdout

