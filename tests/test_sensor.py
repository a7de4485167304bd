"""The new-session sensor: one run per new session, rejected labels recorded, XNAT trouble skips the tick."""

from __future__ import annotations

from datetime import UTC

import dagster as dg
import pytest

from datman_flow.defs.resources import DatmanSettings, XnatResource
from datman_flow.defs.sensors import new_xnat_sessions
from datman_flow.instance_yaml import PRIORITY_TAG, XNAT_TAG
from datman_flow.store import query
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import make_session, one_site_study


@pytest.fixture
def setup(tmp_path, monkeypatch):
    xnat_dir = tmp_path / "xnat"
    make_session(xnat_dir, "SPINS_CMH", "SPN01_CMH_0001_01_01")
    make_session(xnat_dir, "SPINS_CMH", "SPN01_CMH_0002_01_01")
    make_session(xnat_dir, "SPINS_CMH", "not_a_valid_label")
    monkeypatch.setenv("XNAT_USER", "u")
    monkeypatch.setenv("XNAT_PASS", "p")
    with XnatEmulator(xnat_dir, port=0, user="u", password="p") as xnat:
        configs = tmp_path / "configs"
        (configs / "studies").mkdir(parents=True)
        (configs / "tags.yml").write_text("T1: {qc: anat}\n")
        (configs / "studies" / "SPINS.yml").write_text(one_site_study(xnat.url))
        settings = DatmanSettings(config_dir=str(configs), data_dir=str(tmp_path / "data"), settle_minutes=0)
        with dg.instance_for_test() as instance:
            yield xnat, xnat_dir, configs, settings, instance


def tick(instance, settings, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                      resources={"datman": settings, "xnat": XnatResource(user="u", password="p",
                                                                                          listing_retry_seconds=1.0)})
    result = new_xnat_sessions(context)
    return result, context.cursor if not isinstance(result, dg.SensorResult) else result.cursor


def test_new_sessions_get_one_run_each_and_bad_labels_are_recorded(setup, tmp_path):
    xnat, xnat_dir, configs, settings, instance = setup
    result, cursor = tick(instance, settings)
    assert isinstance(result, dg.SensorResult)
    sessions = [r for r in result.run_requests if r.job_name == "ingest_session"]
    assert sorted(r.run_key for r in sessions) == ["SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01"]
    assert all(r.partition_key == r.run_key for r in sessions)
    # the refused label refreshes the operator's board, once (its run key names the label)
    [board] = [r for r in result.run_requests if r.job_name != "ingest_session"]
    assert board.job_name == "refresh_study_views" and board.run_key == "board-after-not_a_valid_label"
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == ["SPN01_CMH_0001_01_01",
                                                                           "SPN01_CMH_0002_01_01"]
    rows = query(tmp_path / "data" / "metrics.duckdb", tmp_path / "data" / "store",
                 "SELECT session, status, reason FROM sessions")
    assert len(rows) == 1 and rows[0]["session"] == "not_a_valid_label" and rows[0]["status"] == "rejected"
    assert "invalid session label" in rows[0]["reason"]


def test_next_tick_sees_only_what_is_new_and_does_little_work(setup):
    xnat, xnat_dir, configs, settings, instance = setup
    _, cursor = tick(instance, settings)
    result, cursor2 = tick(instance, settings, cursor)
    assert isinstance(result, dg.SkipReason) and "no new sessions" in result.skip_message
    make_session(xnat_dir, "SPINS_CMH", "SPN01_CMH_0003_01_01")
    xnat.request_log.clear()
    result, _ = tick(instance, settings, cursor2)
    assert [r.run_key for r in result.run_requests] == ["SPN01_CMH_0003_01_01"]
    # one listing of the project (plus the login): no per-session requests for old sessions
    paths = [path for _, path in xnat.request_log if "JSESSION" not in path]
    assert len(paths) == 1 and "/projects/SPINS_CMH/experiments" in paths[0]


def test_xnat_down_or_garbage_skips_the_tick_with_the_reason(setup):
    xnat, xnat_dir, configs, settings, instance = setup
    xnat.garbage_next(10)
    result, _ = tick(instance, settings)
    assert isinstance(result, dg.SkipReason) and "XNAT" in result.skip_message
    xnat.stop()
    result, _ = tick(instance, settings)
    assert isinstance(result, dg.SkipReason) and "XNAT unavailable" in result.skip_message


def test_invalid_configuration_skips_the_tick_naming_file_and_line(setup):
    xnat, xnat_dir, configs, settings, instance = setup
    study = configs / "studies" / "SPINS.yml"
    study.write_text(study.read_text().replace("T1: {match", "T9: {match"))
    result, _ = tick(instance, settings)
    assert isinstance(result, dg.SkipReason)
    assert "SPINS.yml:" in result.skip_message and "T9" in result.skip_message


def run_request(instance, settings, request: dg.RunRequest) -> bool:
    """What the daemon does with a run request: a real run of the session's assets on the instance."""
    from datman_flow.defs.partitions import SESSIONS
    from datman_flow.defs.session_assets import SESSION_ASSETS

    if not instance.has_dynamic_partition(SESSIONS.name, request.partition_key):  # the sensor's request
        instance.add_dynamic_partitions(SESSIONS.name, [request.partition_key])
    result = dg.materialize(SESSION_ASSETS, partition_key=request.partition_key, instance=instance,
                            resources={"datman": settings, "xnat": XnatResource(user="u", password="p")},
                            tags=request.tags, raise_on_error=False)
    return result.success


def test_a_failed_transfer_is_retried_then_given_up(setup, tmp_path):
    xnat, xnat_dir, configs, settings, instance = setup
    settings = DatmanSettings(config_dir=settings.config_dir, data_dir=settings.data_dir, retry_delays_minutes=[0],
                              settle_minutes=0)
    result, cursor = tick(instance, settings)
    first = {r.partition_key: r for r in result.run_requests}
    xnat.cut_next_zip(100, times=1000)  # every download of the session is cut short
    run_request(instance, settings, first["SPN01_CMH_0001_01_01"])
    xnat.clear_faults()
    run_request(instance, settings, first["SPN01_CMH_0002_01_01"])  # this one arrives whole

    result, cursor = tick(instance, settings, cursor)  # the delay is 0: due at once
    assert [(r.run_key, r.tags["datman/retry"]) for r in result.run_requests] == [
        ("SPN01_CMH_0001_01_01#retry1", "1")]
    xnat.cut_next_zip(100, times=1000)  # XNAT is still in trouble: the retry fails too
    run_request(instance, settings, result.run_requests[0])
    result, cursor = tick(instance, settings, cursor)
    assert isinstance(result, dg.SkipReason)  # one retry allowed: given up, nothing booked
    assert "retry" not in result.skip_message

    xnat.clear_faults()
    second = DatmanSettings(config_dir=settings.config_dir, data_dir=settings.data_dir, retry_delays_minutes=[0, 0],
                            settle_minutes=0)
    again = dg.RunRequest(run_key="manual", partition_key="SPN01_CMH_0001_01_01", tags={"datman/source": "sensor"})
    run_request(instance, second, again)  # re-executed by hand once XNAT is fine: complete, no retry
    result, _ = tick(instance, second, cursor)
    assert isinstance(result, dg.SkipReason)
    rows = query(tmp_path / "data" / "metrics.duckdb", tmp_path / "data" / "store",
                 "SELECT download_status, count(*) AS n FROM series WHERE session = 'SPN01_CMH_0001_01_01' "
                 "GROUP BY ALL")
    assert rows == [{"download_status": "complete", "n": 2}]  # both scans, none failed


def test_retries_wait_for_their_time(setup):
    xnat, xnat_dir, configs, settings, instance = setup
    result, cursor = tick(instance, settings)  # default delays: 10, 30, 90 minutes
    xnat.cut_next_zip(100, times=1000)
    run_request(instance, settings, result.run_requests[0])
    xnat.clear_faults()
    result, cursor = tick(instance, settings, cursor)
    assert isinstance(result, dg.SkipReason) and "1 retry(ies) waiting" in result.skip_message
    assert '"due"' in cursor and "SPN01_CMH_0001_01_01" in cursor


def test_a_cursor_set_by_hand_in_an_older_form_is_understood():
    from datman_flow.pipeline.poll import PollCursor
    from datman_flow.pipeline.watch import WatchState

    by_hand = '{"http://xnat SPINS": {"since": "2026-11-01 00:00:00.000", "recent": {}}}'
    state = WatchState.from_json(by_hand)
    assert state.poll.projects["http://xnat SPINS"].since == "2026-11-01 00:00:00.000"
    assert state.retries.due == {} and state.retries.runs_after == ""
    state.retries.due["A_B_0001_01_01"] = (2, "2026-11-21T10:00:00+00:00")
    again = WatchState.from_json(state.to_json())
    assert again.poll.projects == PollCursor.from_json(by_hand).projects
    assert again.retries.due == {"A_B_0001_01_01": (2, "2026-11-21T10:00:00+00:00")}
    assert WatchState.from_json("not json").retries.due == {}
    # `ingest --new`'s file before the CLI and the sensor shared one implementation
    cli = WatchState.from_json('{"cursor": ' + by_hand + ', "retry": ["A_B_0002_01_01"]}')
    assert cli.poll.projects == again.poll.projects and list(cli.retries.due) == ["A_B_0002_01_01"]
    from datetime import datetime
    assert cli.retries.take_due(datetime.now(UTC)) == [("A_B_0002_01_01", 1)]  # as the sensor and CLI ask


def test_a_session_whose_scans_change_on_xnat_after_its_run_is_requested_again(setup):
    import time

    xnat, xnat_dir, configs, settings, instance = setup
    result, cursor = tick(instance, settings)
    assert "SPN01_CMH_0001_01_01" in [r.run_key for r in result.run_requests]
    result, cursor = tick(instance, settings, cursor)
    assert isinstance(result, dg.SkipReason)
    time.sleep(1.1)  # XNAT's last_modified has millisecond text, folder mtimes a clock tick
    make_session(xnat_dir, "SPINS_CMH", "SPN01_CMH_0001_01_01", series=[("1.2.3.9", 9, "late DTI", 2)])
    result, cursor = tick(instance, settings, cursor)
    assert isinstance(result, dg.SensorResult)
    [again] = result.run_requests
    assert again.partition_key == "SPN01_CMH_0001_01_01" and again.run_key.startswith("SPN01_CMH_0001_01_01#changed@")
    assert again.tags["datman/changed_on_xnat"] == "true"
    waiting = DatmanSettings(config_dir=settings.config_dir, data_dir=settings.data_dir, settle_minutes=10)
    make_session(xnat_dir, "SPINS_CMH", "SPN01_CMH_0003_01_01")  # arriving: waits for the settle window
    result, _ = tick(instance, waiting, cursor)
    assert isinstance(result, dg.SkipReason) and "1 settling on XNAT" in result.skip_message


def test_known_partitions_are_read_once_per_tick_not_once_per_session(setup, monkeypatch):
    """A first tick over 10,000 sessions asked the instance once per label (400 s on PostgreSQL,
    benchmarks/soak.py); now one query, and a session with a partition already is not added again."""
    xnat, xnat_dir, configs, settings, instance = setup
    instance.add_dynamic_partitions("sessions", ["SPN01_CMH_0001_01_01"])
    reads = []
    original = dg.DagsterInstance.get_dynamic_partitions

    def counted(self, name):  # type: ignore[no-untyped-def]
        reads.append(name)
        return original(self, name)

    def per_label(self, name, key):  # type: ignore[no-untyped-def]
        raise AssertionError("one query per label")

    monkeypatch.setattr(dg.DagsterInstance, "get_dynamic_partitions", counted)
    monkeypatch.setattr(dg.DagsterInstance, "has_dynamic_partition", per_label)
    result, _ = tick(instance, settings)
    assert sorted(r.run_key for r in result.run_requests if r.job_name == "ingest_session") == [
        "SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01"]
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["SPN01_CMH_0002_01_01"]]
    assert reads == ["sessions"]


def test_each_run_is_tagged_with_its_xnat_server_and_queue_priority(setup):
    """What Dagster's run queue acts on (runs.yml): the server, for `pulls_per_xnat`, and the
    priority: fresh sessions at the arrival priority; with backfill_after_hours 0 every session
    counts as a backfill."""
    xnat, xnat_dir, configs, settings, instance = setup
    server = xnat.url.split("//", 1)[1]
    result, _ = tick(instance, settings)
    sessions = [r for r in result.run_requests if r.job_name == "ingest_session"]
    assert len(sessions) == 2
    assert all(r.tags[XNAT_TAG] == server and r.tags[PRIORITY_TAG] == "10" for r in sessions)
    (configs / "runs.yml").write_text("backfill_after_hours: 0\nbackfill_priority: -7\n")
    with dg.instance_for_test() as fresh:
        result, _ = tick(fresh, settings)
    sessions = [r for r in result.run_requests if r.job_name == "ingest_session"]
    assert len(sessions) == 2 and all(r.tags[PRIORITY_TAG] == "-7" for r in sessions)
