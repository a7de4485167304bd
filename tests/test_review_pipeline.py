"""Reviewers' decisions back in the pipeline, through Dagster's instance API: a freshly ingested
session's `review` check is pending; a FAIL rating is noticed by the review_changes sensor, whose
requested run turns the check failed; a PASS and a sign-off turn it passed; the board lists the
finding and drops it once signed off; one alert per finding. The sensor's listing: junk names,
unknown sessions, equal modification times. (The board's clock, alerts, gold standards, status
and the demo: test_review_effects.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from datman_flow.definitions import defs
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings
from datman_flow.defs.review_assets import session_review
from datman_flow.defs.review_sensor import review_changes
from datman_flow.layout import DataLayout
from datman_flow.pipeline.alerts import alert_step
from datman_flow.pipeline.board import board_step
from datman_flow.pipeline.review_changes import ReviewCursor, changes_since, review_files
from datman_flow.review.scales import Rating
from datman_flow.store import MetricStore
from datman_flow.xnat.emulator import XnatEmulator

from alert_helpers import WebhookReceiver
from pipeline_helpers import CONFIGS, PHANTOM, sample_template
from review_helpers import PARTICIPANT, REVIEW_URL, rate, register_picture, sign_off


def latest_review_check(instance: dg.DagsterInstance, label: str):
    """The newest evaluation of the session's `review` check."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("session_review"), "review"), limit=20)
    record = next(r for r in records if r.partition == label)
    return record.event.dagster_event.event_specific_data


def tick(instance: dg.DagsterInstance, datman: DatmanSettings, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"datman": datman})
    result = review_changes(context)
    assert isinstance(result, dg.SensorResult)
    return result


def run_requested(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """What the daemon does with the sensor's request: the job of the code location, in-process."""
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags,
                                  asset_selection=request.asset_selection)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """The sample phantom ingested by the code location's `ingest_session` job on a persistent
    instance (its health is ok: nothing on the board until a reviewer finds something)."""
    root = tmp_path_factory.mktemp("review_pipeline")
    sample_template(root / "xnat", [PHANTOM])
    (root / "dagster_home").mkdir()
    mp = pytest.MonkeyPatch()
    with XnatEmulator(root / "xnat", port=0, user="u", password="p") as xnat, \
            dg.instance_for_test(temp_dir=str(root / "dagster_home"), set_dagster_home=False) as instance:
        for key, value in {"DATMAN_XNAT_URL": xnat.url, "XNAT_USER": "u", "XNAT_PASS": "p",
                           "DATMAN_CONFIG_DIR": str(CONFIGS), "DATMAN_DATA_DIR": str(root / "data"),
                           "DATMAN_REVIEW_URL": REVIEW_URL}.items():
            mp.setenv(key, value)
        instance.add_dynamic_partitions(SESSIONS.name, [PHANTOM])
        result = defs.resolve_job_def("ingest_session").execute_in_process(instance=instance, partition_key=PHANTOM,
                                                                       raise_on_error=False)
        assert result.success
        yield instance, root / "data", DatmanSettings(config_dir=str(CONFIGS), data_dir=str(root / "data"))
    mp.undo()


def test_a_rating_reaches_the_check_the_board_and_the_alerts_within_a_sensor_tick(ingested):
    instance, data, datman = ingested
    store = MetricStore.under(data)
    pending = latest_review_check(instance, PHANTOM)  # run by the ingest job itself
    assert pending.passed is False and pending.severity == dg.AssetCheckSeverity.WARN
    assert pending.description.startswith(f"{PHANTOM}: pending: awaiting review (")

    first = tick(instance, datman, None)  # nothing rated yet
    assert not first.run_requests and "no review changed" in first.skip_reason.skip_message
    layout = DataLayout(data)
    hook_env: dict[str, str] = {"DATMAN_REVIEW_URL": REVIEW_URL}
    with WebhookReceiver() as hook:
        hook_env["DATMAN_ALERT_WEBHOOK"] = hook.url
        alert_step(layout, hook_env)  # alerts switched on now: what is found from here on is told

        image = register_picture(store, PHANTOM)
        fail = rate(store, image, Rating.FAIL, "alice", notes="ghosting\nover the\tfrontal lobe | [x](http://evil)")
        result = tick(instance, datman, first.cursor)
        runs = [r for r in result.run_requests if r.job_name == "review_session"]
        [board_run] = [r for r in result.run_requests if r.job_name == "refresh_study_views"]
        assert [r.partition_key for r in runs] == [PHANTOM]
        assert runs[0].run_key.startswith(f"review-{PHANTOM}-")
        assert run_requested(instance, runs[0]).success
        failed = latest_review_check(instance, PHANTOM)
        assert failed.passed is False and failed.severity == dg.AssetCheckSeverity.ERROR
        assert failed.description.startswith(f"{PHANTOM}: failed: series 2 (T1) axial slice 88 rated FAIL by alice: ")
        materialization = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("session_review"), asset_partitions=[PHANTOM]),
            limit=1).records[0].asset_materialization
        assert materialization.metadata["review"].value == "failed"
        assert materialization.metadata["review_app"].value == (f"[{REVIEW_URL}/session/{PHANTOM}]"
                                                               f"({REVIEW_URL}/session/{PHANTOM})")
        assert "\\[x\\](http://evil)" in materialization.metadata["findings"].value  # shown, never a link

        # the board run the sensor asked for: the session's health is ok, its review is not
        assert board_run.asset_selection == [dg.AssetKey("sessions_board")]
        assert run_requested(instance, board_run).success
        board = instance.fetch_materializations(dg.AssetKey("sessions_board"), limit=1).records[0]
        lines = [line for line in board.asset_materialization.metadata["board"].value.splitlines()
                 if line.startswith(f"| {PHANTOM}")]
        assert len(lines) == 1 and "rated FAIL by alice: ghosting over the frontal lobe \\|" in lines[0]
        assert f"look at it in the review app ({REVIEW_URL}/session/{PHANTOM}); blacklist the series" in lines[0]
        assert board.asset_materialization.metadata["review_sessions"].value == 1

        # the alert: one post per finding, never again
        sent = alert_step(layout, hook_env)
        assert [d.key for d in sent.sent] == [f"{PHANTOM}:review:rating-{fail.id}"]
        [post] = [p["text"] for p in hook.accepted()]
        title, *text = post.splitlines()
        assert title == f"{PHANTOM}: series 2 (T1) rated FAIL by alice"
        assert "Notes: ghosting over the frontal lobe | [x](http://evil)." in text  # one line, the newline gone
        assert any(f"({REVIEW_URL}/session/{PHANTOM})" in line for line in text)
        assert not alert_step(layout, hook_env).sent and len(hook.accepted()) == 1

        # a PASS over the FAIL and a sign-off: the check passes, the board forgets it
        rate(store, image, Rating.PASS, "bob")
        sign_off(store, PHANTOM, "bob")
        again = tick(instance, datman, result.cursor)
        [rerun] = [r for r in again.run_requests if r.job_name == "review_session"]
        assert rerun.run_key != runs[0].run_key and run_requested(instance, rerun).success
        passed = latest_review_check(instance, PHANTOM)
        assert passed.passed is True and passed.description.startswith(f"{PHANTOM}: passed: signed off by bob on ")
        assert PHANTOM not in board_step(layout).markdown()

        # the same run put the signed-off phantom into the study's phantom BIDS dataset (before: nothing)
        exports = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("bids_export"), asset_partitions=[PHANTOM]), limit=5).records
        states = [r.asset_materialization.metadata["visit"].value for r in reversed(exports)]
        assert states == ["not exported", "not exported", "written"]  # the ingest, the FAIL, the sign-off
        dataset = layout.bids("SPN01", phantoms=True)
        assert exports[0].asset_materialization.metadata["dataset"].value == str(dataset)
        assert sorted(p.name for p in dataset.glob("sub-CMHFBN/ses-0001/anat/*")) == [
            "sub-CMHFBN_ses-0001_T1w.json", "sub-CMHFBN_ses-0001_T1w.nii.gz"]
        assert not layout.bids("SPN01").exists()  # no participant released: no empty dataset either
        assert not alert_step(layout, hook_env).sent  # the undone FAIL is not told again
    quiet = tick(instance, datman, again.cursor)
    assert not quiet.run_requests  # nothing changed since


def test_the_sensor_ignores_junk_names_and_sessions_dagster_does_not_know(ingested, tmp_path):
    instance, data, datman = ingested
    store_dir = tmp_path / "store"
    other = DatmanSettings(config_dir=str(CONFIGS), data_dir=str(tmp_path))
    (store_dir / "ratings").mkdir(parents=True)
    for name in ("notes.txt", "x-0a1b2c.parquet", "SPN01_CMH.parquet", "_schema.parquet", ".tmp.parquet"):
        (store_dir / "ratings" / name).write_bytes(b"junk")
    junk = tick(instance, other, None)
    assert not junk.run_requests and "no review changed" in junk.skip_reason.skip_message
    unknown = "SPN01_CMH_0999_01_01"  # a valid label with no partition (ingested without this instance)
    (store_dir / "review_signoffs").mkdir()
    (store_dir / "review_signoffs" / f"{unknown}.parquet").write_bytes(b"junk")
    result = tick(instance, other, junk.cursor)
    assert [r.job_name for r in result.run_requests] == ["refresh_study_views"]  # the board only
    assert not tick(instance, other, result.cursor).run_requests


def set_mtime(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))


def test_changes_at_equal_times_are_not_missed_and_a_look_takes_a_bounded_number(tmp_path):
    folder = tmp_path / "store" / "ratings"
    folder.mkdir(parents=True)
    a, b = folder / "SPN01_CMH_0001_01_01.parquet", folder / "SPN01_CMH_0002_01_01.parquet"
    a.write_bytes(b"1")
    set_mtime(a, 5_000_000_000)
    first = changes_since(review_files(tmp_path / "store"), ReviewCursor())
    assert first.changed == {"SPN01_CMH_0001_01_01": 5_000_000_000}
    cursor = ReviewCursor.from_json(first.cursor.to_json())
    b.write_bytes(b"2")
    set_mtime(b, 5_000_000_000)  # saved in the same clock tick as the one already seen
    second = changes_since(review_files(tmp_path / "store"), cursor)
    assert second.changed == {"SPN01_CMH_0002_01_01": 5_000_000_000}
    tmp = folder / ".a.tmp"
    tmp.write_bytes(b"3")
    os.replace(tmp, a)  # a save renames a new file over the old one: a new inode
    set_mtime(a, 5_000_000_000)
    third = changes_since(review_files(tmp_path / "store"), second.cursor)
    assert third.changed == {"SPN01_CMH_0001_01_01": 5_000_000_000}
    assert not changes_since(review_files(tmp_path / "store"), third.cursor).changed
    for n in range(3, 8):
        (folder / f"SPN01_CMH_000{n}_01_01.parquet").write_bytes(b"x")
    some = changes_since(review_files(tmp_path / "store"), third.cursor, limit=2)
    rest = changes_since(review_files(tmp_path / "store"), some.cursor, limit=10)
    assert some.more and len(some.changed) == 2 and not rest.more
    assert sorted([*some.changed, *rest.changed]) == [f"SPN01_CMH_000{n}_01_01" for n in range(3, 8)]
    assert ReviewCursor.from_json("{not json") == ReviewCursor() == ReviewCursor.from_json('{"mtime_ns": "1"}')


def test_a_bad_review_url_costs_the_link_not_the_review(tmp_path, monkeypatch):
    monkeypatch.setenv("DATMAN_REVIEW_URL", "http://host/x)](javascript:alert(1)")
    data = tmp_path / "data"
    sign_off(MetricStore.under(data), PARTICIPANT, "bob")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(SESSIONS.name, [PARTICIPANT])
        result = dg.materialize([session_review], partition_key=PARTICIPANT, instance=instance,
                                resources={"datman": DatmanSettings(config_dir=str(CONFIGS), data_dir=str(data))})
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed is True and check.description.startswith(f"{PARTICIPANT}: passed: signed off by bob")
    metadata = result.asset_materializations_for_node("session_review")[0].metadata
    assert metadata["review_app"].value == "no link: DATMAN_REVIEW_URL is invalid"
