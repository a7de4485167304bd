"""Sending one alert to one destination: a JSON POST to a webhook, or a mail through SMTP.

Either it is accepted (a 2xx answer; the SMTP server took the mail for at least one recipient)
or SendFailed says why in a line a person can read: never with the webhook's secret path nor
the SMTP password in it. Every wait has a timeout.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import requests

from datman_flow.alerts.destinations import Destination, Smtp, Webhook
from datman_flow.alerts.events import AlertEvent, one_line

WEBHOOK_TIMEOUT = (5.0, 10.0)  # connect, read (seconds)
SMTP_TIMEOUT = 10.0  # each blocking socket operation (seconds)
SUBJECT_PREFIX = "[datman-flow] "
HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "requests")


class SendFailed(RuntimeError):
    """The destination did not accept the alert; the message says why (nothing secret in it)."""


def webhook_payload(event: AlertEvent) -> dict[str, str]:
    """Slack's incoming webhooks and Teams both show "text"; the title is its first line, and
    lines are separated by a blank line (Teams joins lines that a single newline separates).
    &, < and > are escaped as Slack asks, so that nothing taken from XNAT or DICOM can be read
    as a mention (<!channel>) or a link."""
    text = "\n\n".join([event.title, *event.text.splitlines()])
    return {"text": text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")}


class _Redact(logging.Filter):
    def __init__(self, hook: Webhook):
        super().__init__()
        self.hook = hook

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.hook.redact(record.getMessage()), ()
        return True


@contextmanager
def redacted_http_logs(hook: Webhook) -> Iterator[None]:
    """urllib3 logs each request's path at DEBUG level: during a POST to `hook`, its path is
    replaced in those records (handlers in the logging tree see the redacted text)."""
    loggers = [logging.getLogger(name) for name in HTTP_LOGGERS]
    redact = _Redact(hook)
    for logger in loggers:
        logger.addFilter(redact)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(redact)


def post_webhook(hook: Webhook, event: AlertEvent, timeout: tuple[float, float] = WEBHOOK_TIMEOUT) -> None:
    """POST the event; redirects are not followed (a 3xx is a failure, like any answer but 2xx)."""
    try:
        with redacted_http_logs(hook):
            answer = requests.post(hook.url, json=webhook_payload(event), timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        waits = f"{timeout[0]:g} s (connect) / {timeout[1]:g} s (read)"
        raise SendFailed(f"{hook.shown}: no answer within {waits}") from None
    except requests.RequestException as exc:
        reason = one_line(hook.redact(f"{type(exc).__name__}: {exc}"), 300)
        raise SendFailed(f"{hook.shown}: {reason}") from None
    if not 200 <= answer.status_code < 300:
        body = one_line(hook.redact(answer.text[:300]), 200)
        raise SendFailed(f"{hook.shown}: answered HTTP {answer.status_code} {answer.reason or ''}".rstrip()
                         + (f": {body}" if body else ""))


def mail_message(smtp: Smtp, event: AlertEvent) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = SUBJECT_PREFIX + event.title
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=smtp.sender.rsplit("@", 1)[-1])
    message["X-Datman-Alert"] = one_line(event.key, 300)
    message.set_content(event.text + "\n")
    return message


def send_mail(smtp: Smtp, event: AlertEvent, timeout: float = SMTP_TIMEOUT) -> str:
    """Send the event as a mail; returns a note on recipients the server refused ('' when none)."""
    context = ssl.create_default_context()
    try:
        if smtp.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            if smtp.starttls:
                client.starttls(context=context)
            if smtp.user:
                client.login(smtp.user, smtp.password)
            refused = client.send_message(mail_message(smtp, event))
    except (smtplib.SMTPException, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if smtp.password:
            reason = reason.replace(smtp.password, "***")
        raise SendFailed(f"{smtp.shown}: {one_line(reason, 300)}") from None
    if refused:
        return f"{smtp.shown}: the server refused {', '.join(sorted(refused))}"
    return ""


def deliver(destination: Destination, event: AlertEvent) -> str:
    """Send `event` to `destination` (SendFailed when it is not accepted); returns a note for
    the operator, or ''."""
    if isinstance(destination, Webhook):
        post_webhook(destination, event)
        return ""
    return send_mail(destination, event)
