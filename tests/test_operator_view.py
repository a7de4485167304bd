"""What an operator sees in Dagster, asserted through the instance API: each session's check
results on its own partition, its health verdict as a run tag, on the `session_health`
partition and its `healthy` check, and in the metric store."""

from __future__ import annotations

import dagster as dg
import pytest

from datman_flow.defs.after_run import judge_after_failure, judge_after_success
from datman_flow.defs.health import HEALTH_TAG, REASONS_TAG
from datman_flow.defs.resources import DatmanSettings
from datman_flow.defs.runner import run_session
from datman_flow.defs.study_assets import sessions_board
from datman_flow.store import MetricStore, SessionRow
from datman_flow.xnat.emulator import XnatEmulator

from pipeline_helpers import CONFIGS, PHANTOM, sample_template
from ui_helpers import browser_missing, chromium_page, dagster_webserver, open_check_partition, open_markdown, open_page

NO_DTI = "SPN01_CMH_0002_01_01"  # the sample session whose DTI was not acquired
NOT_ON_XNAT = "SPN01_CMH_0099_01_01"  # a valid label XNAT does not have: its run fails


@pytest.fixture(scope="module")
def operator(tmp_path_factory):
    """Three runs on one persistent instance: the session missing its DTI, the phantom, and a
    session whose run fails."""
    root = tmp_path_factory.mktemp("operator")
    sample_template(root / "xnat", [NO_DTI, PHANTOM])
    (root / "dagster_home").mkdir()
    mp = pytest.MonkeyPatch()
    with XnatEmulator(root / "xnat", port=0, user="u", password="p") as xnat, \
            dg.instance_for_test(temp_dir=str(root / "dagster_home"), set_dagster_home=False) as instance:
        for key, value in {"DATMAN_XNAT_URL": xnat.url, "XNAT_USER": "u", "XNAT_PASS": "p"}.items():
            mp.setenv(key, value)
        runs = {label: run_session(instance, label, CONFIGS, root / "data") for label in (NO_DTI, PHANTOM, NOT_ON_XNAT)}
        env = {"DATMAN_XNAT_URL": xnat.url, "XNAT_USER": "u", "XNAT_PASS": "p", "DATMAN_CONFIG_DIR": str(CONFIGS),
               "DATMAN_DATA_DIR": str(root / "data")}
        yield instance, runs, root / "data", root / "dagster_home", env
    mp.undo()


def check_history(instance: dg.DagsterInstance, asset: str, check: str) -> dict[str, list[str]]:
    """partition -> the statuses of its executions of one check, newest first."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey(asset), check), limit=50)
    out: dict[str, list[str]] = {}
    for record in records:
        out.setdefault(str(record.partition), []).append(record.status.value)
    return out


def test_each_sessions_check_results_are_on_its_partition(operator):
    instance, runs, *_ = operator
    expected = check_history(instance, "series_index", "expected_series")
    # the failed run planned its checks and never evaluated them (the UI shows them as not run)
    assert expected == {NO_DTI: ["FAILED"], PHANTOM: ["SUCCEEDED"], NOT_ON_XNAT: ["PLANNED"]}
    drift = check_history(instance, "nifti", "header_drift")
    assert drift[PHANTOM] == ["SUCCEEDED"] and drift[NOT_ON_XNAT] == ["PLANNED"]
    record = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("series_index"), "expected_series"), limit=5)
    failed = next(r for r in record if r.partition == NO_DTI)
    evaluation = failed.event.dagster_event.event_specific_data
    assert evaluation.description.startswith(f"{NO_DTI}: missing DTI60 (0/1)")


def test_health_is_a_run_tag_a_partition_and_a_check(operator):
    instance, runs, *_ = operator
    verdicts = {label: instance.get_run_by_id(run.run_id).tags.get(HEALTH_TAG) for label, run in runs.items()
                if run.run_id}
    assert verdicts == {NO_DTI: "attention", PHANTOM: "ok", NOT_ON_XNAT: "failed"}
    assert instance.get_run_by_id(runs[NO_DTI].run_id).tags[REASONS_TAG] == "missing DTI60 (0/1)"
    assert REASONS_TAG not in instance.get_run_by_id(runs[PHANTOM].run_id).tags
    assert "is not in XNAT project" in instance.get_run_by_id(runs[NOT_ON_XNAT].run_id).tags[REASONS_TAG]

    result = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("session_health")), limit=10)
    by_partition = {r.partition_key: r.asset_materialization.metadata["health"].value for r in result.records}
    assert by_partition == {NO_DTI: "attention", PHANTOM: "ok", NOT_ON_XNAT: "failed"}

    # the `healthy` check of the last step: a warning for attention; never run when the run failed
    healthy = check_history(instance, "qc_metrics", "healthy")
    assert healthy == {NO_DTI: ["FAILED"], PHANTOM: ["SUCCEEDED"], NOT_ON_XNAT: ["PLANNED"]}
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("qc_metrics"), "healthy"), limit=5)
    evaluation = next(r for r in records if r.partition == NO_DTI).event.dagster_event.event_specific_data
    assert evaluation.severity.value == "WARN"
    assert evaluation.description == f"{NO_DTI}: attention (missing DTI60 (0/1))"


def test_health_is_in_the_store_and_the_session_summary(operator):
    _, runs, data, *_ = operator
    store = MetricStore.under(data)
    assert store.read(SessionRow, NO_DTI)[0].health == "attention"
    rows = {r["session"]: r for r in store.query("SELECT * FROM session_summary")}
    assert rows[NO_DTI]["health"] == "attention" and rows[NO_DTI]["health_reasons"] == "missing DTI60 (0/1)"
    assert rows[NO_DTI]["checks_failed"] == 1 and rows[NO_DTI]["series"] == 2
    assert rows[NO_DTI]["checks_not_evaluated"] == 2  # no reference yet for its T1 and RST
    assert rows[PHANTOM]["health"] == "ok" and rows[PHANTOM]["qc_measured"] == 1
    assert rows[NOT_ON_XNAT]["health"] == "failed"
    assert str(rows[NO_DTI]["scan_date"]) == "2024-03-19"  # a DATE in the view
    assert runs[NO_DTI].health is not None and str(runs[NO_DTI].health) == "attention (missing DTI60 (0/1))"


def test_the_board_lists_the_sessions_that_need_a_person(operator):
    instance, _, data, *_ = operator
    datman = DatmanSettings(config_dir=str(CONFIGS), data_dir=str(data))
    assert dg.materialize([sessions_board], instance=instance, resources={"datman": datman}).success
    record = instance.fetch_materializations(dg.AssetKey("sessions_board"), limit=1).records[0]
    metadata = record.asset_materialization.metadata
    assert metadata["sessions_needing_a_person"].value == 2  # the phantom is ok
    board = metadata["board"].value
    lines = [line for line in board.splitlines() if line.startswith(f"| {NO_DTI}") or line.startswith("| SPN01")]
    # newest first: the failed run has no scan date (recorded now), the session missing its DTI was scanned in 2024
    assert [line.split(" | ")[0].strip("| ") for line in lines] == [NOT_ON_XNAT, NO_DTI]
    assert "missing DTI60 (0/1)" in lines[1] and "ask the site whether DTI60 was acquired" in lines[1]
    assert "is not in XNAT project" in lines[0] and f"datman-flow ingest --session {NOT_ON_XNAT}" in lines[0]
    assert metadata["missing_sessions"].value == 1 and metadata["failed_sessions"].value == 1


def test_the_sensors_judge_a_finished_run_and_refresh_the_study_views(operator):
    """What the daemon does after each run of the sensor's: the same verdict, reported again."""
    instance, runs, data, *_ = operator
    datman = DatmanSettings(config_dir=str(CONFIGS), data_dir=str(data))
    for label, sensor, status in ((NO_DTI, judge_after_success, "PIPELINE_SUCCESS"),
                                  (NOT_ON_XNAT, judge_after_failure, "PIPELINE_FAILURE")):
        run = instance.get_run_by_id(runs[label].run_id)
        event = next(r.event_log_entry.dagster_event for r in instance.get_records_for_run(run.run_id).records
                     if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.event_type_value == status)
        context = dg.build_run_status_sensor_context(sensor.name, event, instance, run, resources={"datman": datman})
        request = sensor(context.for_run_failure() if status == "PIPELINE_FAILURE" else context)
        assert isinstance(request, dg.RunRequest) and request.run_key == f"after-{run.run_id}"
    reported = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("session_health"),
                                                                     asset_partitions=[NOT_ON_XNAT]), limit=5)
    assert len(reported.records) == 2  # the runner's report, then the sensor's
    assert reported.records[0].asset_materialization.metadata["health"].value == "failed"
    assert "is not in XNAT project" in instance.get_run_by_id(runs[NOT_ON_XNAT].run_id).tags[REASONS_TAG]


@pytest.mark.slow
@pytest.mark.skipif(bool(browser_missing()), reason=browser_missing() or "browser present")
def test_the_ui_shows_the_failed_check_and_the_qc_picture_of_the_session_missing_its_dti(operator):
    """The real dagster-webserver over this instance, in headless Chromium, as an operator opens it."""
    *_, home, env = operator
    with dagster_webserver(home, env) as base, chromium_page() as page:
        open_check_partition(page, base, "series_index", "expected_series", NO_DTI)
        assert page.get_by_text(f"{NO_DTI}: missing DTI60 (0/1)").first.is_visible()
        assert page.get_by_text("Failed", exact=True).last.is_visible()

        open_page(page, f"{base}/assets/qc_metrics?view=partitions&partition={NO_DTI}")
        open_markdown(page, "pictures")
        pictures = page.locator("img[src^='data:image/png']")
        pictures.first.wait_for()
        assert pictures.count() == 2  # its T1 and its resting state
        widths = [pictures.nth(i).evaluate("img => img.naturalWidth") for i in range(pictures.count())]
        assert all(w > 100 for w in widths)  # decoded pictures, not broken images
