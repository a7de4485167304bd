"""Real receivers for the alert tests on 127.0.0.1: a webhook (http.server in a thread) and an SMTP
server (aiosmtpd); and the store rows the alerts are made from."""

from __future__ import annotations

import json
import socket
import threading
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

from datman_flow.store import HeaderDiffRow, HeaderParameterRow, MetricStore, SessionRow

SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxSecretToken123"
T0 = datetime(2026, 11, 2, 9, 0, 0)  # when the alert ledger is started in most tests


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts.append((self.path, self.headers.get("Content-Type", ""), body, self.server.status))
        answer = (self.server.answer or "ok").encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


class WebhookReceiver(ThreadingHTTPServer):
    """Answers every POST with `status` (and `answer` as its body), keeping what it was sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[tuple[str, str, bytes, int]] = []  # path, content type, body, status answered
        self.status, self.answer = 200, ""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{SECRET_PATH}"

    def accepted(self) -> list[dict]:
        """The JSON bodies answered with a 2xx."""
        return [json.loads(body) for _, _, body, status in self.posts if 200 <= status < 300]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class Inbox:
    """aiosmtpd handler: every mail accepted, kept as (envelope sender, recipients, message)."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """A real SMTP server on 127.0.0.1 (aiosmtpd in its own thread)."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def write_session(store: MetricStore, label: str, health: str, reasons: str = "", *, ingested_at: datetime,
                  scan_date: str = "20261102", status: str = "ingested") -> None:
    study, site = label.split("_")[:2]
    store.replace(SessionRow, label, [SessionRow(session=label, study=study, site=site, subject=label.split("_")[2],
                                                 scan_date=scan_date, ingested_at=ingested_at, status=status,
                                                 health=health, health_reasons=reasons)])


def write_upgrade(store: MetricStore, label: str, version: object, previous: object = "syngo MR E11A",
                  tags: tuple[str, ...] = ("T1",)) -> None:
    """The header_drift step's rows for a session whose scanner software differs from the reference."""
    study, site = label.split("_")[:2]
    numbers = [str(n) for n in range(3, 3 + len(tags))]
    store.replace(HeaderParameterRow, label, [
        HeaderParameterRow(session=label, study=study, site=site, tag=tag, series_number=number,
                           parameters=json.dumps({"SoftwareVersions": version})) for tag, number in zip(tags, numbers)])
    store.replace(HeaderDiffRow, label, [
        HeaderDiffRow(session=label, series_number=number, tag=tag, field="SoftwareVersions",
                      expected=json.dumps(previous), actual=json.dumps(version), tolerance=None,
                      kind="software_upgrade", gold_source=f"configs/gold/{study}/{site}/{tag}.json",
                      provisional=False, severity="warn") for tag, number in zip(tags, numbers)])


def every_text_under(folder: Path) -> str:
    """Every file under `folder` read as text (to look for a secret in it)."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.rglob("*")) if p.is_file())
