"""runs.yml (run queue, per-XNAT limit, QC pool, priorities), the sensor's run tags, and the
dagster.yaml that `datman-flow instance yaml` writes, loaded by Dagster itself."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from datman_flow.config import load_config
from datman_flow.config.runs_block import RunSettings
from datman_flow.instance_yaml import QC_POOL, REFRESH_TAG, XNAT_TAG, instance_yaml
from datman_flow.pipeline.run_tags import is_backfill, xnat_server
from datman_flow.xnat.models import Experiment

from test_config import STUDY, issues_of, make

REPO = Path(__file__).resolve().parents[1]


def with_runs(tmp_path: Path, text: str) -> Path:
    root = make(tmp_path, {"SPINS.yml": STUDY})
    (root / "runs.yml").write_text(text)
    return root


def test_defaults_without_runs_yml_and_the_repository_file_says_the_same(tmp_path):
    root = make(tmp_path, {"SPINS.yml": STUDY})
    assert load_config(root, env={}).runs == RunSettings()
    assert load_config(REPO / "configs", env={}).runs == RunSettings()  # the shipped file documents the defaults
    assert RunSettings().qc_slots == 3  # 8 GB / 2.5 GB


def test_values_and_environment_overrides(tmp_path):
    root = with_runs(tmp_path, "max_concurrent_runs: 12\npulls_per_xnat: 3\nqc_memory_gb: 64\n"
                               "qc_gb_per_session: 3\nbackfill_priority: -5\n")
    runs = load_config(root, env={}).runs
    assert (runs.max_concurrent_runs, runs.pulls_per_xnat, runs.qc_slots, runs.backfill_priority) == (12, 3, 21, -5)
    env = {"DATMAN_PULLS_PER_XNAT": "1", "DATMAN_QC_MEMORY_GB": "2"}
    runs = load_config(root, env=env).runs
    assert (runs.pulls_per_xnat, runs.qc_slots, runs.max_concurrent_runs) == (1, 1, 12)  # never fewer than 1 slot


@pytest.mark.parametrize("text, expected", [
    ("pulls_per_xnat: 0\n", "runs.yml:1: pulls_per_xnat: must be 1 or more, got number 0"),
    ("max_concurent_runs: 4\n", "runs.yml:1: unknown key 'max_concurent_runs' (did you mean 'max_concurrent_runs'?)"),
    ("qc_memory_gb: '8'\n", "runs.yml:1: qc_memory_gb: expected a number, got '8'"),
    ("pulls_per_xnat: 2.5\n", "runs.yml:1: pulls_per_xnat: expected a whole number, got number 2.5"),
    ("- 4\n", "runs.yml:1: expected 'key: value' lines"),
])
def test_mistakes_are_refused_with_file_and_line(tmp_path, text, expected):
    root = with_runs(tmp_path, text)
    problems = issues_of(root)
    assert len(problems) == 1 and problems[0].startswith(str(root / expected.split(":")[0]))
    assert expected.split(":", 1)[1] in problems[0].replace(str(root / "runs.yml"), "runs.yml")


def test_a_bad_environment_value_names_the_variable(tmp_path):
    root = make(tmp_path, {"SPINS.yml": STUDY})
    assert issues_of(root, env={"DATMAN_MAX_CONCURRENT_RUNS": "many"}) == [
        "environment: DATMAN_MAX_CONCURRENT_RUNS='many': not a number (it overrides runs.yml's max_concurrent_runs)"]
    [problem] = issues_of(root, env={"DATMAN_MAX_CONCURRENT_RUNS": "0"})
    assert problem.startswith("environment: DATMAN_MAX_CONCURRENT_RUNS='0': ") and "greater than or equal to 1" in problem


def test_the_xnat_server_tag_is_host_and_port_never_credentials():
    assert xnat_server("https://User:Secret@XNAT.lab.org/xnat") == "xnat.lab.org"
    assert xnat_server("http://127.0.0.1:8080") == "127.0.0.1:8080"


def test_backfill_is_a_session_already_old_when_first_seen():
    runs, now = RunSettings(), datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def exp(inserted: str) -> Experiment:
        return Experiment("X1", "L", "P", "", "xnat:mrSessionData", inserted, "/uri")

    assert is_backfill(exp("2026-11-29 12:00:00.000"), runs, now)
    assert not is_backfill(exp("2026-12-01 02:00:00.000"), runs, now)  # 10 h: a fresh arrival, time zones aside
    assert not is_backfill(exp(""), runs, now)  # no date: treated as an arrival
    assert not is_backfill(exp("2026-11-29 12:00:00"), runs.model_copy(update={"backfill_after_hours": 72.0}), now)
    assert is_backfill(exp("2026-12-01 11:59:55.000"), runs.model_copy(update={"backfill_after_hours": 0.0}), now)


@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
def test_dagster_loads_the_written_instance_yaml_with_our_limits(tmp_path, monkeypatch, storage):
    """Dagster's own schema accepts the file, and the instance it builds carries the limits."""
    if storage == "postgres":
        pytest.importorskip("dagster_postgres", reason="the postgres extra (pip install 'datman-flow[postgres]')")
        for name, value in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": "1", "DAGSTER_PG_USER": "u",
                            "DAGSTER_PG_PASSWORD": "p", "DAGSTER_PG_DB": "d"}.items():
            monkeypatch.setenv(name, value)
    runs = RunSettings(max_concurrent_runs=7, pulls_per_xnat=3, qc_memory_gb=10, qc_gb_per_session=2.5)
    text = instance_yaml(runs, storage)
    (tmp_path / "dagster.yaml").write_text(text)
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(tmp_path))  # raises on anything the schema refuses
    assert ("storage" in config) == (storage == "postgres")
    if storage == "postgres":
        assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
        return  # building the instance would connect to the database: tests/test_postgres_instance.py does
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        queue = instance.get_concurrency_config()
        assert queue.run_queue_config.max_concurrent_runs == 7
        assert queue.run_queue_config.tag_concurrency_limits == [
            {"key": XNAT_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 3},
            {"key": REFRESH_TAG, "limit": 1}]
        assert queue.pool_config.default_pool_limit == 4 and queue.pool_config.pool_granularity.value == "op"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled


def test_the_qc_step_is_in_the_qc_pool():
    from datman_flow.definitions import defs

    [qc] = [node for node in defs.resolve_job_def("ingest_session").graph.node_defs if node.name == "qc_metrics"]
    assert qc.pool == QC_POOL


def test_the_queue_starts_one_refresh_of_the_study_views_at_a_time(tmp_path, monkeypatch):
    """Dagster's own counter of the queue daemon, with the written file's limits and the jobs' runs
    as the sensors create them: a second refresh waits while one runs; session runs do not."""
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    from datman_flow.definitions import defs

    monkeypatch.setenv("XNAT_USER", "u")
    monkeypatch.setenv("XNAT_PASS", "p")
    (tmp_path / "dagster.yaml").write_text(instance_yaml(RunSettings()))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        refresh = defs.resolve_job_def("refresh_study_views")
        # the job's tags go on each run a sensor requests (Dagster merges them; the soak checks it)
        running, waiting = (instance.create_run_for_job(refresh, tags=refresh.run_tags) for _ in range(2))
        session = instance.create_run_for_job(defs.resolve_job_def("ingest_session"), tags={XNAT_TAG: "xnat.lab.org"})
        assert running.tags[REFRESH_TAG] and not TagConcurrencyLimitsCounter(limits, []).is_blocked(running)
        in_progress = TagConcurrencyLimitsCounter(limits, [running])
        assert in_progress.is_blocked(waiting)
        assert not in_progress.is_blocked(session)


def test_the_cli_writes_the_file_and_refuses_a_missing_folder(tmp_path):
    root = with_runs(tmp_path, "max_concurrent_runs: 9\n")
    cli = [sys.executable, "-m", "datman_flow.cli", "instance", "yaml", "--config-dir", str(root)]
    done = subprocess.run([*cli, "--out", str(tmp_path / "dagster.yaml")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "at most 9 runs at once, 2 per XNAT server, 3 QC at once" in done.stdout
    written = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
    assert written["concurrency"]["runs"]["max_concurrent_runs"] == 9
    done = subprocess.run([*cli, "--out", str(tmp_path / "nowhere" / "dagster.yaml")], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2 and "no folder" in done.stderr
    done = subprocess.run([*cli[:-2], "--config-dir", str(with_runs(tmp_path / "bad", "pulls_per_xnat: -1\n"))],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "pulls_per_xnat: must be 1 or more" in done.stderr



def test_a_refresh_of_the_study_views_waiting_in_the_queue_covers_later_runs():
    """After each session run the study views are refreshed, but a burst must not queue one refresh
    per session: while one waits (not started, so it has not read the store yet), no other is asked."""
    from datman_flow.defs.after_run import no_refresh_needed

    every, now = timedelta(0), datetime.now(UTC)  # the interval is the next test's
    with dg.instance_for_test() as instance:
        assert no_refresh_needed(instance, every, now) == ""
        waiting = instance.add_run(dg.DagsterRun(job_name="refresh_study_views", run_id="r-waiting",
                                                 status=dg.DagsterRunStatus.NOT_STARTED))
        assert "waiting in the queue" in no_refresh_needed(instance, every, now)
        instance.add_run(dg.DagsterRun(job_name="ingest_session", run_id="other",
                                       status=dg.DagsterRunStatus.NOT_STARTED))  # another job's: no matter
        instance.handle_run_event(waiting.run_id, dg.DagsterEvent(
            event_type_value="PIPELINE_START", job_name="refresh_study_views"))  # it starts: it may have read already
        assert instance.get_run_by_id("r-waiting").status == dg.DagsterRunStatus.STARTED
        assert no_refresh_needed(instance, every, now) == ""


def test_in_a_burst_the_study_views_are_refreshed_at_most_every_few_minutes_and_after_the_last_run():
    """refresh_every_minutes: with a refresh asked for less than that ago, a finished run asks for none
    while other session runs are queued or in progress; the last run of the burst always asks."""
    from datman_flow.defs.after_run import no_refresh_needed

    every, now = timedelta(minutes=5), datetime.now(UTC)
    with dg.instance_for_test() as instance:
        instance.add_run(dg.DagsterRun(job_name="refresh_study_views", run_id="r-recent",
                                       status=dg.DagsterRunStatus.STARTED))
        assert no_refresh_needed(instance, every, now) == ""  # no session run left: this was the last
        pending = instance.add_run(dg.DagsterRun(job_name="ingest_session", run_id="s-waiting",
                                                 status=dg.DagsterRunStatus.NOT_STARTED))
        assert "less than 5 min ago" in no_refresh_needed(instance, every, now)
        assert no_refresh_needed(instance, every, now + timedelta(minutes=6)) == ""  # that refresh is old now
        assert no_refresh_needed(instance, timedelta(0), now) == ""  # 0: after every run
        instance.report_run_canceled(instance.get_run_by_id(pending.run_id))
        assert no_refresh_needed(instance, every, now) == ""


def test_the_refresh_interval_from_runs_yml_and_the_environment(tmp_path):
    root = with_runs(tmp_path, "refresh_every_minutes: 2\n")
    assert load_config(root, env={}).runs.refresh_every_minutes == 2
    assert load_config(root, env={"DATMAN_REFRESH_EVERY_MINUTES": "0"}).runs.refresh_every_minutes == 0
    assert issues_of(with_runs(tmp_path / "bad", "refresh_every_minutes: -1\n"))
