"""Alert settings from the environment: bad values refused naming the variable; a webhook URL's
secret path never shown, logged or written; the SMTP password never in a message."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from datman_flow.alerts import AlertConfigError, Smtp, Webhook
from datman_flow.alerts.destinations import destinations_from_env
from datman_flow.layout import DataLayout
from datman_flow.pipeline.alerts import alert_step

from alert_helpers import SECRET_PATH, T0, SmtpServer, WebhookReceiver, every_text_under, free_port, write_session

MAIL = {"DATMAN_SMTP_HOST": "smtp.lab.example.org", "DATMAN_ALERT_FROM": "datman@lab.example.org",
        "DATMAN_ALERT_TO": "qc@lab.example.org"}


@pytest.mark.parametrize(("env", "named", "said"), [
    ({"DATMAN_ALERT_WEBHOOK": "ftp://hooks.example.org/services/x"}, "DATMAN_ALERT_WEBHOOK", "not an http(s) URL"),
    ({"DATMAN_ALERT_WEBHOOK": "hooks.slack.com/services/x"}, "DATMAN_ALERT_WEBHOOK", "not an http(s) URL"),
    ({"DATMAN_ALERT_WEBHOOK": "https://user:hunter2@hooks.example.org/x"}, "DATMAN_ALERT_WEBHOOK", "user or password"),
    ({"DATMAN_ALERT_WEBHOOK": "https://hooks.example.org:port/x"}, "DATMAN_ALERT_WEBHOOK", "not a URL"),
    ({**MAIL, "DATMAN_SMTP_PORT": "smtp"}, "DATMAN_SMTP_PORT='smtp'", "port number"),
    ({**MAIL, "DATMAN_SMTP_PORT": "70000"}, "DATMAN_SMTP_PORT='70000'", "port number"),
    ({**MAIL, "DATMAN_SMTP_STARTTLS": "maybe"}, "DATMAN_SMTP_STARTTLS='maybe'", "true or false"),
    ({**MAIL, "DATMAN_SMTP_PORT": "465", "DATMAN_SMTP_STARTTLS": "true"}, "DATMAN_SMTP_STARTTLS", "already TLS"),
    ({**MAIL, "DATMAN_SMTP_USER": "lab"}, "DATMAN_SMTP_PASSWORD", "both or neither"),
    ({**MAIL, "DATMAN_SMTP_USER": "lab", "DATMAN_SMTP_PASSWORD": "pw"}, "DATMAN_SMTP_STARTTLS", "not be encrypted"),
    ({**MAIL, "DATMAN_SMTP_HOST": "smtp host; rm"}, "DATMAN_SMTP_HOST", "host name"),
    ({**MAIL, "DATMAN_ALERT_FROM": ""}, "DATMAN_ALERT_FROM", "not set"),
    ({**MAIL, "DATMAN_ALERT_TO": ""}, "DATMAN_ALERT_TO", "not set"),
    ({**MAIL, "DATMAN_ALERT_TO": "qc@lab.example.org, nobody"}, "DATMAN_ALERT_TO", "not an e-mail address"),
    ({**MAIL, "DATMAN_ALERT_TO": "qc@lab.example.org\r\nBcc: x@y.org"}, "DATMAN_ALERT_TO", "not an e-mail address"),
    ({"DATMAN_ALERT_TO": "qc@lab.example.org"}, "DATMAN_SMTP_HOST", "is not"),
])
def test_bad_values_are_refused_naming_the_variable(env, named, said):
    with pytest.raises(AlertConfigError) as caught:
        destinations_from_env(env)
    assert named in str(caught.value) and said in str(caught.value)
    assert "hunter2" not in str(caught.value) and "/services/x" not in str(caught.value)


def test_good_values_make_the_destinations():
    found = destinations_from_env({
        "DATMAN_ALERT_WEBHOOK": "https://hooks.slack.com/services/A/B/C, https://lab.webhook.office.com/x/y\n"
                                "https://hooks.slack.com/services/A/B/C",
        **MAIL, "DATMAN_SMTP_PORT": "587", "DATMAN_SMTP_STARTTLS": "yes", "DATMAN_SMTP_USER": "lab",
        "DATMAN_SMTP_PASSWORD": "s3cret"})
    assert [d.shown for d in found] == ["webhook https://hooks.slack.com/…", "webhook https://lab.webhook.office.com/…",
                                        "e-mail to qc@lab.example.org via smtp.lab.example.org:587"]
    smtp = found[2]
    assert isinstance(smtp, Smtp) and smtp.starttls and not smtp.implicit_tls and smtp.user == "lab"
    assert "s3cret" not in repr(smtp) and "/services/A/B/C" not in repr(found[0]) + found[0].id
    assert destinations_from_env({}) == []
    assert destinations_from_env({**MAIL, "DATMAN_SMTP_PORT": "465", "DATMAN_SMTP_USER": "u",
                                  "DATMAN_SMTP_PASSWORD": "p"})[0].implicit_tls


def test_the_secret_path_is_in_no_log_message_report_or_file(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's request lines included
    layout = DataLayout(tmp_path / "data")
    closed = Webhook(f"http://127.0.0.1:{free_port()}{SECRET_PATH}")  # nothing listens there
    with WebhookReceiver() as hook:
        hook.status, hook.answer = 500, f"no such hook: POST {SECRET_PATH}"  # a server that echoes the path
        env = {"DATMAN_ALERT_WEBHOOK": f"{hook.url} {closed.url}"}
        alert_step(layout, env, now=T0)
        write_session(layout.metric_store, "SPN01_CMH_0001_01_01", "failed", "pull failed", ingested_at=T0)
        report = alert_step(layout, env, now=T0)
        hook.status = 200
        later = alert_step(layout, env, now=T0 + timedelta(minutes=1))
    assert len(report.failed) == 2 and len(later.sent) == 1 and len(later.failed) == 1
    assert "answered HTTP 500 Internal Server Error: no such hook: POST /…" in report.failed[0].note
    assert "ConnectionError" in report.failed[1].note
    assert any("POST /…" in r.getMessage() for r in caplog.records if r.name.startswith("urllib3"))
    said = "\n".join([report.summary(), *report.warnings(), later.summary(), *later.warnings(),
                      *(r.getMessage() for r in caplog.records), every_text_under(layout.root / "state")])
    for part in ("T0SECRET", "xoxSecretToken123"):
        assert part not in said


def test_an_smtp_server_without_starttls_is_a_failure_without_the_password(tmp_path):
    layout = DataLayout(tmp_path / "data")
    with SmtpServer() as smtp:  # plain SMTP: no STARTTLS offered, so no login is attempted in clear text
        env = {**MAIL, "DATMAN_SMTP_HOST": "127.0.0.1", "DATMAN_SMTP_PORT": str(smtp.port),
               "DATMAN_SMTP_STARTTLS": "true", "DATMAN_SMTP_USER": "lab", "DATMAN_SMTP_PASSWORD": "pa55word-xyz"}
        alert_step(layout, env, now=T0)
        write_session(layout.metric_store, "SPN01_CMH_0001_01_01", "failed", "pull failed", ingested_at=T0)
        report = alert_step(layout, env, now=T0)
        assert smtp.inbox.mails == []
    assert len(report.failed) == 1 and "STARTTLS extension not supported" in report.failed[0].note
    assert "pa55word" not in report.summary() + "".join(report.warnings()) + every_text_under(layout.root / "state")
