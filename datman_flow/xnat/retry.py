"""Waiting out an XNAT that is unavailable: retries for a time budget, not a number of attempts.

A Tomcat restart refuses connections, then answers 503 while the XNAT webapp starts: minutes,
not seconds. Idempotent requests (GET, the login) are retried with exponential backoff and
jitter until the budget (default 300 s) or the caller's deadline runs out, whichever comes
first; every failed attempt is logged with how long XNAT has been unavailable.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from .deadline import Deadline, duration
from .errors import XnatUnavailable

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """`budget`: seconds to keep retrying after the first failure; delays start at `backoff`
    and double up to `max_delay`, each drawn between half and all of that (jitter)."""

    budget: float = 300.0
    backoff: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if not self.budget >= 0 or not self.backoff > 0 or not self.max_delay > 0:
            raise ValueError(f"retry budget, backoff and max_delay must be positive: {self}")


class Outage:
    """The failed attempts of one request, from the first failure on."""

    def __init__(self, policy: RetryPolicy, server: str, request: str, deadline: Deadline | None) -> None:
        self.policy, self.server, self.request = policy, server, request
        self.started = time.monotonic()
        self.until = self.started + policy.budget
        self.deadline = deadline if deadline is not None and deadline.at < self.until else None
        if self.deadline is not None:
            self.until = self.deadline.at
        self.attempts = 0
        self.last = ""

    def failed(self, error: str) -> float | None:
        """Record a failed attempt; the seconds to wait before the next one, or None when the
        budget (or the caller's deadline) is spent."""
        self.attempts += 1
        self.last = error
        now = time.monotonic()
        left = self.until - now
        if left <= 0:
            return None
        delay = min(self.policy.backoff * 2 ** (self.attempts - 1), self.policy.max_delay)
        delay = min(delay / 2 + random.uniform(0, delay / 2), left)
        until = (datetime.now() + timedelta(seconds=left)).strftime("%H:%M:%S")
        log.warning("XNAT at %s unavailable for %s (%s); retrying until %s%s", self.server,
                    duration(now - self.started), error, until,
                    f" ({self.deadline})" if self.deadline is not None else "")
        return delay

    def error(self) -> XnatUnavailable:
        limit = str(self.deadline) if self.deadline is not None else f"retry budget {duration(self.policy.budget)}"
        return XnatUnavailable(
            f"XNAT at {self.server} unavailable for {duration(time.monotonic() - self.started)} "
            f"({self.attempts} attempts; {limit}): {self.last} for {self.request}")
