"""Who is logged in to the review app, kept by the app (never in module state).

The session cookie is signed, not stored: Starlette's SessionMiddleware would accept a copied
cookie until it expires, even after its owner logged out. So each login gets a random id that
the cookie carries and the app remembers; logging out forgets it, and a cookie whose id the app
does not know is no login (a restarted app asks everyone to log in again). Logins last
MAX_AGE seconds at most. Failed logins are counted per client address: after LIMIT within
WINDOW seconds that address is refused until the window has passed (the scrypt hash makes each
guess cost 50 ms already; this makes a guessing run cost hours).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque

MAX_AGE = 12 * 3600  # a working day and a half: a reviewer logs in once a day
LIMIT, WINDOW = 10, 600.0


class LoginRegistry:
    def __init__(self, max_age: float = MAX_AGE) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._active: dict[str, tuple[str, float]] = {}  # login id -> (user, when it started, monotonic)

    def start(self, user: str) -> str:
        login_id = secrets.token_urlsafe(18)
        now = time.monotonic()
        with self._lock:
            self._active = {k: v for k, v in self._active.items() if now - v[1] < self.max_age}
            self._active[login_id] = (user, now)
        return login_id

    def end(self, login_id: object) -> None:
        with self._lock:
            self._active.pop(str(login_id), None)

    def user_of(self, login_id: object, user: object) -> str | None:
        """The user of a live login whose cookie names `user`, else None."""
        if not isinstance(login_id, str) or not isinstance(user, str):
            return None
        with self._lock:
            found = self._active.get(login_id)
        if found is None or found[0] != user or time.monotonic() - found[1] >= self.max_age:
            return None
        return user


class LoginThrottle:
    def __init__(self, limit: int = LIMIT, window: float = WINDOW) -> None:
        self.limit, self.window = limit, window
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, time.monotonic())) >= self.limit

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # many addresses: forget the quiet ones
                self._failures = {k: v for k, v in self._failures.items() if v and now - v[-1] < self.window}

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
