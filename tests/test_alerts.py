"""Alerts to a webhook (a real HTTP receiver on 127.0.0.1): one post per event and never again,
also after a restart; a destination that fails is retried, then given up; the sensor through
Dagster; `datman-flow alerts` as cron runs it. (E-mail: test_alerts_mail.py; settings and
secrets: test_alerts_settings.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import dagster as dg
import pytest

from datman_flow.alerts.ledger import Ledger
from datman_flow.defs.alert_sensor import session_alerts
from datman_flow.defs.resources import DatmanSettings
from datman_flow.layout import DataLayout
from datman_flow.pipeline.alerts import alert_step, ledger_path, step_lock

from alert_helpers import T0, WebhookReceiver, write_session, write_upgrade

A, B, C, D = (f"SPN01_CMH_000{n}_01_01" for n in range(1, 5))


@pytest.fixture
def layout(tmp_path):
    return DataLayout(tmp_path / "data")


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


def texts(receiver: WebhookReceiver) -> list[str]:
    return [post["text"] for post in receiver.accepted()]


def test_one_post_per_event_never_again_and_history_is_not_sent(layout, hook):
    env = {"DATMAN_ALERT_WEBHOOK": hook.url}
    store = layout.metric_store
    write_session(store, "SPN01_CMH_0099_01_01", "failed", "old news", ingested_at=T0 - timedelta(days=30))
    first = alert_step(layout, env, now=T0)  # switching alerts on: the ledger starts now
    assert hook.posts == [] and not first.sent and "start now" in first.notes[0]
    assert ledger_path(layout).exists()

    later = T0 + timedelta(minutes=5)
    write_session(store, A, "attention", "header drift in RST (FlipAngle)", ingested_at=later, scan_date="20261103")
    write_session(store, B, "failed", "pull failed: XNAT answered 404", ingested_at=later, scan_date="20261101")
    write_session(store, C, "ok", ingested_at=later)
    write_session(store, D, "", ingested_at=later)  # its run has not finished
    write_upgrade(store, A, "syngo MR E11C", tags=("T1", "RST"))
    write_upgrade(store, B, "syngo MR E11C")  # scanned earlier: the upgrade is told with B's label
    report = alert_step(layout, env, now=later)
    assert len(report.sent) == 3 and not report.failed
    assert sorted(d.key for d in report.sent) == sorted([f"{A}:health:attention", f"{B}:health:failed",
                                                        f"{B}:software_upgrade:CMH:syngo MR E11C"])
    posts = texts(hook)
    assert len(posts) == 3 and all(ctype == "application/json" for _, ctype, _, _ in hook.posts)
    upgrade, attention = posts[0], next(text for text in posts if A in text.splitlines()[0])
    assert upgrade.splitlines()[0] == "Scanner software upgrade at SPN01 CMH: syngo MR E11C"
    assert "from syngo MR E11A to syngo MR E11C" in upgrade and f"First seen in session {B}" in upgrade
    assert "2 session(s) show it" in upgrade and f"`datman-flow gold promote --session {B} --tag T1`" in upgrade
    assert attention.splitlines()[0] == f"{A} needs attention"
    assert "Why: header drift in RST (FlipAngle)." in attention and "scanned 2026-11-03" in attention
    assert attention.splitlines()[-1].startswith(f"Next: open the Dagster UI, asset partition {A}")
    assert not any("0099" in text for text in posts)

    # next step, with the ledger read again from its file (as after a restart): nothing again
    again = alert_step(layout, env, now=later + timedelta(minutes=1))
    assert not again.sent and again.summary().startswith("nothing new to alert") and len(hook.posts) == 3
    ledger, _ = Ledger.open(ledger_path(layout), later)
    assert ledger.exists and ledger.created == T0 and len(ledger.deliveries) == 3

    # a new verdict is a new event; a later session showing the same upgrade is not
    write_session(store, A, "failed", "conversion of T1 failed", ingested_at=later + timedelta(minutes=2))
    write_session(store, C, "ok", ingested_at=later + timedelta(minutes=2), scan_date="20261020")
    write_upgrade(store, C, "syngo MR E11C")  # now the earliest scan: the key changes, the topic does not
    report = alert_step(layout, env, now=later + timedelta(minutes=3))
    assert [d.key for d in report.sent] == [f"{A}:health:failed"] and len(hook.posts) == 4
    assert texts(hook)[-1].splitlines()[0] == f"{A} failed"


def test_a_failing_destination_is_not_recorded_and_retried_then_given_up(layout, hook):
    env = {"DATMAN_ALERT_WEBHOOK": hook.url}
    alert_step(layout, env, now=T0)
    write_session(layout.metric_store, A, "attention", "T1 missing", ingested_at=T0)
    hook.status, hook.answer = 500, "internal error"
    report = alert_step(layout, env, now=T0)
    assert len(report.failed) == 1 and not report.sent and len(hook.posts) == 1
    assert "answered HTTP 500" in report.failed[0].note and "internal error" in report.failed[0].note
    assert "tried again later" in report.summary() and "failing" in ledger_path(layout).read_text()

    report = alert_step(layout, env, now=T0 + timedelta(seconds=60))  # the next tick: tried again at once
    assert len(report.failed) == 1 and report.failed[0].attempts == 2 and len(hook.posts) == 2
    report = alert_step(layout, env, now=T0 + timedelta(seconds=90))  # then after 1, 2, 4, ... minutes
    assert not report.failed and report.postponed == 1 and len(hook.posts) == 2

    write_session(layout.metric_store, B, "attention", "RST missing", ingested_at=T0)
    report = alert_step(layout, env, now=T0 + timedelta(seconds=200))  # A is due again, and B is new
    assert len(report.failed) == 1 and report.postponed == 1 and len(hook.posts) == 3  # one try per step

    hook.status = 200
    report = alert_step(layout, env, now=T0 + timedelta(minutes=10))
    assert sorted(d.key for d in report.sent) == [f"{A}:health:attention", f"{B}:health:attention"]
    assert len(hook.accepted()) == 2 and alert_step(layout, env, now=T0 + timedelta(minutes=20)).sent == []

    write_session(layout.metric_store, C, "failed", "pull failed", ingested_at=T0 + timedelta(hours=1))
    hook.status = 404
    for minutes in range(0, 26 * 60, 61):  # a day of failures: given up, once, and reported
        report = alert_step(layout, env, now=T0 + timedelta(hours=1, minutes=minutes))
        if report.gave_up:
            break
    assert report.gave_up and report.gave_up[0].key == f"{C}:health:failed"
    assert "given up after" in report.warnings()[-1]
    tried = len(hook.posts)
    assert alert_step(layout, env, now=T0 + timedelta(days=3)).gave_up == [] and len(hook.posts) == tried


def test_a_burst_is_sent_a_few_per_step(layout, hook):
    env = {"DATMAN_ALERT_WEBHOOK": hook.url}
    alert_step(layout, env, now=T0)
    for label in (A, B, C):
        write_session(layout.metric_store, label, "attention", "T1 missing", ingested_at=T0)
    report = alert_step(layout, env, now=T0, per_destination=2)
    assert len(report.sent) == 2 and report.postponed == 1 and "1 waiting" in report.summary()
    assert [d.key for d in alert_step(layout, env, now=T0, per_destination=2).sent] == [f"{C}:health:attention"]
    assert len(hook.posts) == 3


def test_a_second_step_while_one_is_running_does_nothing(layout, hook):
    with step_lock(layout) as got:
        assert got
        report = alert_step(layout, {"DATMAN_ALERT_WEBHOOK": hook.url}, now=T0)
    assert report.busy and "another alert step is running" in report.summary()
    assert not ledger_path(layout).exists()


def test_an_unreadable_ledger_is_moved_aside_and_nothing_old_is_sent_again(layout, hook):
    env = {"DATMAN_ALERT_WEBHOOK": hook.url}
    write_session(layout.metric_store, A, "attention", "T1 missing", ingested_at=T0)
    alert_step(layout, env, now=T0)
    assert len(hook.posts) == 1
    ledger_path(layout).write_text('{"version": 1, "created": ')
    report = alert_step(layout, env, now=T0 + timedelta(minutes=1))
    assert "unreadable" in report.notes[0] and not report.sent and len(hook.posts) == 1
    assert list(ledger_path(layout).parent.glob("alerts_sent.json.unreadable-*"))


def tick(instance, settings):
    context = dg.build_sensor_context(instance=instance, resources={"datman": settings})
    return session_alerts(context)


def test_the_sensor_sends_once_across_restarts_and_says_when_nothing_is_configured(tmp_path, hook, monkeypatch):
    for name in ("DATMAN_ALERT_WEBHOOK", "DATMAN_SMTP_HOST", "DATMAN_ALERT_TO"):
        monkeypatch.delenv(name, raising=False)
    settings = DatmanSettings(config_dir=str(tmp_path / "configs"), data_dir=str(tmp_path / "data"))
    layout = DataLayout(tmp_path / "data")
    with dg.instance_for_test() as instance:
        result = tick(instance, settings)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message.startswith("no alert destination configured: set DATMAN_ALERT_WEBHOOK or "
                                          "DATMAN_SMTP_HOST")
    assert not ledger_path(layout).exists()

    monkeypatch.setenv("DATMAN_ALERT_WEBHOOK", hook.url)
    with dg.instance_for_test() as instance:
        assert "nothing new to alert" in tick(instance, settings).skip_message
        write_session(layout.metric_store, A, "failed", "pull failed", ingested_at=datetime.now() + timedelta(seconds=1))
        result = tick(instance, settings)
    assert result.skip_message.startswith(f"sent 1: {A}:health:failed -> webhook http://127.0.0.1/…")
    with dg.instance_for_test() as instance:  # a new instance and process: Dagster restarted
        assert "nothing new to alert" in tick(instance, settings).skip_message
    assert len(hook.posts) == 1

    monkeypatch.setenv("DATMAN_SMTP_PORT", "twenty-five")
    monkeypatch.setenv("DATMAN_SMTP_HOST", "127.0.0.1")
    with dg.instance_for_test() as instance:
        message = tick(instance, settings).skip_message
    assert "DATMAN_SMTP_PORT='twenty-five'" in message and "next tick" in message


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATMAN_ALERT", "DATMAN_SMTP"))}
    return subprocess.run([sys.executable, "-m", "datman_flow.cli", *args], capture_output=True, text=True,
                          env={**clean, **env}, timeout=120, check=False)


def test_the_cli_sends_what_the_sensor_would_and_dry_run_changes_nothing(tmp_path, hook):
    data = str(tmp_path / "data")
    nothing = run_cli("alerts", "--data-dir", data, env={})
    assert nothing.returncode == 2 and "no alert destination configured" in nothing.stderr
    env = {"DATMAN_ALERT_WEBHOOK": hook.url}
    started = run_cli("alerts", "--data-dir", data, env=env)
    assert started.returncode == 0 and "start now" in started.stderr, started.stderr
    write_session(DataLayout(tmp_path / "data").metric_store, A, "attention", "T1 missing",
                  ingested_at=datetime.now() + timedelta(seconds=1))
    dry = run_cli("alerts", "--dry-run", "--data-dir", data, env=env)
    assert dry.returncode == 0 and f"would send: {A}:health:attention -> webhook http://127.0.0.1/…" in dry.stdout
    assert hook.posts == [] and json.loads(ledger_path(DataLayout(tmp_path / "data")).read_text())["events"] == {}
    sent = run_cli("alerts", "--data-dir", data, env=env)
    assert sent.returncode == 0 and f"sent: {A}:health:attention" in sent.stdout and len(hook.posts) == 1
    hook.status = 503
    write_session(DataLayout(tmp_path / "data").metric_store, B, "failed", "pull failed",
                  ingested_at=datetime.now() + timedelta(seconds=1))
    failed = run_cli("alerts", "--data-dir", data, env=env)
    assert failed.returncode == 1 and "HTTP 503" in failed.stderr
