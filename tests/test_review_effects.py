"""What reviewers' decisions change outside Dagster's partitions: the board leaves a session
signed off after its run (UTC sign-offs against local `ingested_at`, under two time zones) and
keeps an unsettled finding; alerts carry a finding's time as local time, reviewers' text on one
line; a blacklisted series is never promoted; `datman-flow status` shows each review; the demo
makes its reviewer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datman_flow.alerts import AlertConfigError
from datman_flow.alerts.ledger import local_from_utc
from datman_flow.cli.demo import ensure_demo_reviewer
from datman_flow.layout import DataLayout
from datman_flow.pipeline.alerts import alert_step
from datman_flow.pipeline.board import board_step
from datman_flow.pipeline.gold import PromoteRefused, promote_series
from datman_flow.review.accounts import Accounts
from datman_flow.review.scales import Rating
from datman_flow.store import CheckRow, MetricStore, SeriesRow, SessionRow

from alert_helpers import WebhookReceiver, write_session
from pipeline_helpers import REPO
from review_helpers import PARTICIPANT, REVIEW_URL, decide, rate, register_picture, sign_off


@pytest.fixture
def zone():
    """Run under another time zone (the store's `ingested_at` is local time, sign-offs UTC)."""
    before = os.environ.get("TZ")

    def use(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield use
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.parametrize("tz", ["America/Toronto", "Asia/Tokyo"])
def test_a_session_signed_off_after_its_run_leaves_the_board_on_one_clock(tmp_path, zone, tz):
    zone(tz)
    layout = DataLayout(tmp_path / "data")
    store = layout.metric_store
    ran = datetime.now().replace(microsecond=0)  # local, as the runs write it
    early, late = "SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01"
    for label in (early, late):
        write_session(store, label, "attention", "missing DTI60 (0/1)", ingested_at=ran)
        store.replace(CheckRow, label, [CheckRow(session=label, check_name="expected_series", tag="DTI60",
                                                 passed=False, expected=1, found=0, detail="missing 1")],
                      part="expected_series")
    run_utc = ran.astimezone(UTC).replace(tzinfo=None)
    sign_off(store, early, "carol", created=run_utc - timedelta(minutes=1))  # before the run: still on the board
    sign_off(store, late, "carol", created=run_utc + timedelta(minutes=1))  # after it: seen by a person
    assert local_from_utc(run_utc) == ran
    board = board_step(layout, REVIEW_URL)
    assert board.sessions == [early] and board.signed_off == 1
    assert board.items[0].problem.kind == "missing"

    # a finding after the sign-off brings it back, with the review first; a sign-off after it settles it
    image = register_picture(store, late)
    rate(store, image, Rating.FAIL, "dave", created=run_utc + timedelta(minutes=2))
    decide(store, late, "3", "blacklisted", "dave", "motion", created=run_utc + timedelta(minutes=3))
    board = board_step(layout, REVIEW_URL)
    items = [i for i in board.items if i.session == late]
    assert [i.problem.kind for i in items] == ["review", "review"]  # its run's problems were signed off
    assert items[1].problem.text == "series 3 (T1) blacklisted by dave: motion"
    sign_off(store, late, "erin", created=run_utc + timedelta(minutes=4))
    assert board_step(layout, REVIEW_URL).sessions == [early]


def test_review_alerts_carry_the_findings_time_as_local_time(tmp_path, zone):
    zone("Asia/Tokyo")
    layout = DataLayout(tmp_path / "data")
    store = layout.metric_store
    with WebhookReceiver() as hook:
        env = {"DATMAN_ALERT_WEBHOOK": hook.url}
        start = datetime.now().replace(microsecond=0)
        alert_step(layout, env, now=start)
        made = (start + timedelta(seconds=5)).astimezone(UTC).replace(tzinfo=None)
        decision = decide(store, PARTICIPANT, "3", "blacklisted", "bob\r\nBcc: x@evil", "motion\nartefact",
                          created=made)
        old = decide(store, "SPN01_CMH_0008_01_01", "4", "blacklisted", "bob", "before alerts were on",
                     created=made - timedelta(hours=1))
        report = alert_step(layout, env, now=start + timedelta(minutes=1))
        assert [d.key for d in report.sent] == [f"{PARTICIPANT}:review:decision-{decision.id}"]
        assert old.id != decision.id
        [post] = [p["text"] for p in hook.accepted()]
        title, *lines = post.splitlines()
        assert title == f"{PARTICIPANT}: series 3 (T1) blacklisted by bob Bcc: x@evil"
        assert "Reason: motion artefact." in lines
        assert any(f"http://127.0.0.1:8050/session/{PARTICIPANT}" in line for line in lines)  # the default URL


def test_a_bad_review_url_is_refused_naming_the_variable(tmp_path):
    with WebhookReceiver() as hook, pytest.raises(AlertConfigError, match="DATMAN_REVIEW_URL"):
        alert_step(DataLayout(tmp_path / "data"), {"DATMAN_ALERT_WEBHOOK": hook.url,
                                                   "DATMAN_REVIEW_URL": "javascript:alert(1)"})


def converted_t1(data: Path, label: str, series: str) -> None:
    """A participant's converted T1 in the store, with its NIfTI and sidecar on disk."""
    folder = data / "nii" / label
    folder.mkdir(parents=True, exist_ok=True)
    nifti = folder / f"{label}_T1_0{series}_t1.nii.gz"
    import nibabel as nib
    import numpy as np

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), nifti)
    nifti.with_name(nifti.name.replace(".nii.gz", ".json")).write_text(json.dumps(
        {"EchoTime": 0.003, "RepetitionTime": 2.3, "SoftwareVersions": "syngo MR E11"}))
    MetricStore.under(data).replace(SeriesRow, label, [SeriesRow(
        session=label, scan_id=series, series_number=series, description="t1", tag="T1", nifti_path=str(nifti),
        conversion_status="converted", download_status="complete")])


def test_a_blacklisted_series_is_never_promoted(tmp_path):
    data, configs = tmp_path / "data", tmp_path / "configs"
    configs.mkdir()
    converted_t1(data, PARTICIPANT, "5")
    store = MetricStore.under(data)
    decide(store, PARTICIPANT, "5", "blacklisted", "bob", "motion\nthroughout", created=datetime(2026, 11, 3, 14, 0))
    result = subprocess.run([sys.executable, "-m", "datman_flow.cli", "gold", "promote", "--session", PARTICIPANT,
                             "--tag", "T1", "--data-dir", str(data), "--config-dir", str(configs)],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"series 5 of {PARTICIPANT} is blacklisted by bob on 2026-11-03: motion "
                                     f"throughout; clear it in the review app first")
    assert not (configs / "gold").exists()
    decide(store, PARTICIPANT, "5", "cleared", "bob", "re-checked: fine")
    promoted = promote_series(configs, DataLayout(data), PARTICIPANT, "T1")
    assert promoted.path == configs / "gold" / "SPN01" / "CMH" / "T1.json" and promoted.path.exists()
    decide(store, PARTICIPANT, "5", "flagged", "bob", "a little motion")  # flagged is kept, and promotable
    assert promote_series(configs, DataLayout(data), PARTICIPANT, "T1").replaced
    decide(store, PARTICIPANT, "5", "blacklisted", "carol", "wrong coil")
    with pytest.raises(PromoteRefused, match="blacklisted by carol") as refused:
        promote_series(configs, DataLayout(data), PARTICIPANT, "T1", "5")
    assert refused.value.code == 2


def test_status_shows_each_sessions_review(tmp_path):
    data = tmp_path / "data"
    store = MetricStore.under(data)
    now = datetime.now().replace(microsecond=0)
    labels = [f"SPN01_CMH_000{n}_01_01" for n in (1, 2, 3)]
    for label in labels:
        store.replace(SessionRow, label, [SessionRow(session=label, study="SPN01", site="CMH", status="ingested",
                                                     scan_date="20261102", ingested_at=now, health="ok")])
    rate(store, register_picture(store, labels[1]), Rating.FAIL, "alice")
    sign_off(store, labels[2], "bob")
    cli = [sys.executable, "-m", "datman_flow.cli", "status", "--data-dir", str(data)]
    lines = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    assert {json.loads(line)["session"]: json.loads(line)["review"] for line in lines} == {
        labels[0]: "pending", labels[1]: "failed", labels[2]: "passed"}
    table = subprocess.run([*cli, "--table"], cwd=REPO, capture_output=True, text=True, timeout=120,
                           check=True).stdout.splitlines()
    column = table[0].index("review")
    assert {row.split()[0]: " ".join(row[column:].split()) for row in table[1:-1]} == {
        labels[0]: "pending", labels[1]: "failed (1)", labels[2]: "passed"}


def test_the_demo_makes_its_reviewer_once_and_keeps_a_changed_password(tmp_path):
    assert ensure_demo_reviewer(tmp_path / "data") == "login demo / demo-review"
    accounts = Accounts(tmp_path / "data")
    assert accounts.verify("demo", "demo-review")
    accounts.set_password("demo", "changed-by-me")
    ensure_demo_reviewer(tmp_path / "data")
    assert accounts.verify("demo", "changed-by-me") and [r.name for r in accounts.reviewers()] == ["demo"]
