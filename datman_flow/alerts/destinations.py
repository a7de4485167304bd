"""Where alerts go, from the environment: chat webhooks (Slack, Teams) and/or e-mail through
an SMTP server. A bad value is refused with an error naming the variable.

A webhook URL is a secret (Slack's path is the credential): it is never shown, logged or
written; people see `https://host/…` and the ledger keeps a digest of it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from urllib.parse import urlsplit

WEBHOOK_VAR = "DATMAN_ALERT_WEBHOOK"
SMTP_HOST_VAR = "DATMAN_SMTP_HOST"
SMTP_PORT_VAR = "DATMAN_SMTP_PORT"
SMTP_STARTTLS_VAR = "DATMAN_SMTP_STARTTLS"
SMTP_USER_VAR = "DATMAN_SMTP_USER"
SMTP_PASSWORD_VAR = "DATMAN_SMTP_PASSWORD"
FROM_VAR = "DATMAN_ALERT_FROM"
TO_VAR = "DATMAN_ALERT_TO"
DEFAULT_SMTP_PORT = 25
IMPLICIT_TLS_PORT = 465
NO_DESTINATION = (f"no alert destination configured: set {WEBHOOK_VAR} or {SMTP_HOST_VAR} (Slack/Teams webhook "
                  f"URLs; or an SMTP server, with {FROM_VAR} and {TO_VAR})")
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$|^\[[0-9A-Fa-f:.]+\]$")
ADDRESS = re.compile(r"^[^\s@<>,;\"]+@[A-Za-z0-9.-]+$")


class AlertConfigError(ValueError):
    """An alert variable of the environment has a value that cannot be used (named in the message)."""


def shown_url(url: str) -> str:
    """scheme://host/… : what may be shown of a webhook URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
    except ValueError:
        return "(an unreadable URL)/…"
    return f"{parts.scheme or '?'}://{host}/…"


@dataclass(frozen=True)
class Webhook:
    """A Slack incoming webhook or a Teams webhook: a JSON POST of {"text": ...}."""

    url: str = field(repr=False)

    @property
    def id(self) -> str:
        """Stable and not secret: the host and a digest of the URL (the ledger's name for it)."""
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        return f"webhook:{urlsplit(self.url).hostname}:{digest}"

    @property
    def shown(self) -> str:
        return f"webhook {shown_url(self.url)}"

    def redact(self, text: str) -> str:
        """`text` with the URL, and its path, replaced by what may be shown."""
        parts = urlsplit(self.url)
        secret = parts.path + (f"?{parts.query}" if parts.query else "")
        text = text.replace(self.url, shown_url(self.url))
        return text.replace(secret, "/…") if len(secret) > 1 else text


@dataclass(frozen=True)
class Smtp:
    """E-mail through an SMTP server: port 465 is implicit TLS, `starttls` upgrades another port."""

    host: str
    port: int
    starttls: bool
    sender: str
    recipients: tuple[str, ...]
    user: str = ""
    password: str = field(default="", repr=False)

    @property
    def implicit_tls(self) -> bool:
        return self.port == IMPLICIT_TLS_PORT

    @property
    def id(self) -> str:
        """The recipients (a relay moved to another host is the same destination)."""
        return "email:" + ",".join(sorted(self.recipients))

    @property
    def shown(self) -> str:
        return f"e-mail to {', '.join(self.recipients)} via {self.host}:{self.port}"


Destination = Webhook | Smtp


def webhook_urls(text: str) -> list[Webhook]:
    """DATMAN_ALERT_WEBHOOK: one or more http(s) URLs, separated by commas or spaces."""
    hooks: list[Webhook] = []
    for url in (part for part in re.split(r"[,\s]+", text) if part):
        shown = shown_url(url)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - a port that is not a number raises here
        except ValueError:
            raise AlertConfigError(f"{WEBHOOK_VAR}: {shown} is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AlertConfigError(f"{WEBHOOK_VAR}: {shown} is not an http(s) URL with a host")
        if parts.username is not None or parts.password is not None:
            raise AlertConfigError(f"{WEBHOOK_VAR}: {shown} has a user or password in it; webhooks are "
                                   "authorised by their URL alone")
        if url not in (hook.url for hook in hooks):
            hooks.append(Webhook(url))
    return hooks


def smtp_port(text: str) -> int:
    if not text:
        return DEFAULT_SMTP_PORT
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise AlertConfigError(f"{SMTP_PORT_VAR}={text!r}: a port number from 1 to 65535 (25, 587, or 465 for TLS)")
    return int(text)


def flag(name: str, text: str) -> bool:
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise AlertConfigError(f"{name}={text!r}: true or false")


def address(name: str, text: str) -> str:
    _, found = parseaddr(text)
    if not ADDRESS.match(text) or found != text:
        raise AlertConfigError(f"{name}: {text[:80]!r} is not an e-mail address (user@host)")
    return text


def smtp_from_env(env: Mapping[str, str]) -> Smtp | None:
    host = env.get(SMTP_HOST_VAR, "").strip()
    recipients = [part.strip() for part in env.get(TO_VAR, "").split(",") if part.strip()]
    if not host:
        if recipients:
            raise AlertConfigError(f"{TO_VAR} is set but {SMTP_HOST_VAR} is not: set the SMTP server to send through")
        return None
    if not HOST.match(host):
        raise AlertConfigError(f"{SMTP_HOST_VAR}={host[:80]!r}: a host name or address")
    port = smtp_port(env.get(SMTP_PORT_VAR, "").strip())
    starttls = flag(SMTP_STARTTLS_VAR, env.get(SMTP_STARTTLS_VAR, "").strip())
    if starttls and port == IMPLICIT_TLS_PORT:
        raise AlertConfigError(f"{SMTP_STARTTLS_VAR}=true with {SMTP_PORT_VAR}={IMPLICIT_TLS_PORT}: port 465 is "
                               "already TLS; set one or the other")
    user, password = env.get(SMTP_USER_VAR, ""), env.get(SMTP_PASSWORD_VAR, "")
    if bool(user) != bool(password):
        raise AlertConfigError(f"{SMTP_USER_VAR} and {SMTP_PASSWORD_VAR} go together: set both or neither")
    if user and not (starttls or port == IMPLICIT_TLS_PORT):
        raise AlertConfigError(f"{SMTP_USER_VAR} is set but the connection would not be encrypted: set "
                               f"{SMTP_STARTTLS_VAR}=true or {SMTP_PORT_VAR}={IMPLICIT_TLS_PORT}")
    sender = env.get(FROM_VAR, "").strip()
    if not sender:
        raise AlertConfigError(f"{FROM_VAR} is not set: the sender address of alert mails (required with "
                               f"{SMTP_HOST_VAR})")
    if not recipients:
        raise AlertConfigError(f"{TO_VAR} is not set: the recipients of alert mails, separated by commas "
                               f"(required with {SMTP_HOST_VAR})")
    return Smtp(host=host, port=port, starttls=starttls, sender=address(FROM_VAR, sender),
                recipients=tuple(address(TO_VAR, r) for r in dict.fromkeys(recipients)), user=user, password=password)


def destinations_from_env(env: Mapping[str, str] | None = None) -> list[Destination]:
    """Every configured destination ([] when none is); AlertConfigError naming the variable
    whose value cannot be used."""
    env = os.environ if env is None else env
    found: list[Destination] = list(webhook_urls(env.get(WEBHOOK_VAR, "")))
    smtp = smtp_from_env(env)
    return found + [smtp] if smtp else found
