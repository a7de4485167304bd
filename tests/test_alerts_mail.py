"""Alerts by e-mail, through a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta

import pytest

from datman_flow.layout import DataLayout
from datman_flow.pipeline.alerts import alert_step

from alert_helpers import T0, SmtpServer, WebhookReceiver, write_session, write_upgrade

A = "SPN01_CMH_0001_01_01"


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


def mail_env(smtp: SmtpServer) -> dict[str, str]:
    return {"DATMAN_SMTP_HOST": "127.0.0.1", "DATMAN_SMTP_PORT": str(smtp.port),
            "DATMAN_ALERT_FROM": "datman@lab.example.org", "DATMAN_ALERT_TO": "mri-qc@lab.example.org, pi@lab.example.org"}


def test_one_mail_per_event_with_subject_body_and_recipients(tmp_path, smtp):
    layout = DataLayout(tmp_path / "data")
    env = mail_env(smtp)
    alert_step(layout, env, now=T0)
    write_session(layout.metric_store, A, "attention", "T1: expected 1, found 0; QC flag snr_total of T1",
                  ingested_at=T0 + timedelta(minutes=1))
    report = alert_step(layout, env, now=T0 + timedelta(minutes=2))
    assert [d.destination for d in report.sent] == [
        f"e-mail to mri-qc@lab.example.org, pi@lab.example.org via 127.0.0.1:{smtp.port}"]
    assert len(smtp.inbox.mails) == 1
    sender, recipients, message = smtp.inbox.mails[0]
    assert sender == "datman@lab.example.org"
    assert sorted(recipients) == ["mri-qc@lab.example.org", "pi@lab.example.org"]
    assert message["Subject"] == f"[datman-flow] {A} needs attention"
    assert message["To"] == "mri-qc@lab.example.org, pi@lab.example.org"
    assert message["X-Datman-Alert"] == f"{A}:health:attention"
    body = message.get_content()
    assert f"Session {A} (study SPN01, site CMH, scanned 2026-11-02): health attention" in body
    assert "Why: T1: expected 1, found 0; QC flag snr_total of T1." in body
    assert f"Next: open the Dagster UI, asset partition {A}" in body

    alert_step(layout, env, now=T0 + timedelta(minutes=3))
    assert len(smtp.inbox.mails) == 1  # never twice


def test_mail_and_webhook_each_get_the_event_and_a_hostile_version_stays_on_one_line(tmp_path, smtp):
    layout = DataLayout(tmp_path / "data")
    with WebhookReceiver() as hook:
        env = {**mail_env(smtp), "DATMAN_ALERT_WEBHOOK": hook.url}
        alert_step(layout, env, now=T0)
        write_session(layout.metric_store, A, "ok", ingested_at=T0)
        write_upgrade(layout.metric_store, A, ["syngo MR E11C\r\nBcc: everyone@example.org", "<!channel>"])
        report = alert_step(layout, env, now=T0)
        assert len(report.sent) == 2 and len(hook.accepted()) == 1 and len(smtp.inbox.mails) == 1
        text = hook.accepted()[0]["text"]
    _, recipients, message = smtp.inbox.mails[0]
    assert "everyone@example.org" not in recipients and message["Bcc"] is None
    assert message["Subject"] == ("[datman-flow] Scanner software upgrade at SPN01 CMH: "
                                  "syngo MR E11C Bcc: everyone@example.org / <!channel>")
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text  # no @channel ping from a DICOM header


def test_an_smtp_server_that_is_down_is_a_readable_failure_tried_again(tmp_path):
    layout = DataLayout(tmp_path / "data")
    with SmtpServer() as smtp:
        env = mail_env(smtp)
    alert_step(layout, env, now=T0)  # the server has stopped: nothing listens on its port
    write_session(layout.metric_store, A, "failed", "pull failed", ingested_at=T0)
    report = alert_step(layout, env, now=T0)
    assert len(report.failed) == 1 and "ConnectionRefusedError" in report.failed[0].note
    assert report.failed[0].note.startswith(f"e-mail to mri-qc@lab.example.org, pi@lab.example.org via "
                                            f"127.0.0.1:{smtp.port}")
    with SmtpServer() as again:
        env = {**env, "DATMAN_SMTP_PORT": str(again.port)}  # the relay is back (elsewhere): same recipients
        report = alert_step(layout, env, now=T0 + timedelta(minutes=1))
        assert len(report.sent) == 1 and len(again.inbox.mails) == 1
