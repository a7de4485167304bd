"""The review app's two busiest pages against a store of 2,000 sessions, over real HTTP.

Run: `make bench-review` (or `PYTHONPATH=. .venv/bin/python benchmarks/review_pages.py
[--sessions N] [--requests N] [--data DIR]`). The data folder is built by
benchmarks/review_data.py's `make_store` (2,000 synthetic sessions, a quarter reviewed; about a
minute on 2 cores; `--data DIR` keeps it and reuses it on the next run). A reviewer is added
with `Accounts`, the app started with `ReviewServer(data_dir)` on 127.0.0.1, and one
`requests.Session` logs in as a browser does (GET /login, the hidden `csrf_token` input, POST
/login with username, password and csrf_token, keeping the cookie). Then:

- the first request of each page after the start (cold: the queue first, with the app's caches
  still empty, then the session page, as a reviewer opens them),
- one warm-up, then `--requests` timed requests each (median and 90th percentile) of
  `GET /` (the queue) and `GET /session/<label>` (a reviewed session with real pictures),
- a reviewer's loop, `--requests` times: save a rating (`POST /session/<label>/rate`, timed),
  then open the queue again (its first view after the change: the ratings' cache reads the
  changed file again),

printed against the budgets: queue 300 ms, session page 500 ms (as the ratio time / budget).
Exit status 0 when measured (whatever the ratios), 1 when the app cannot be benchmarked (no
login page, login refused, a page that is not 200): the message says which and why.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import requests
from review_data import make_store

from datman_flow.review.accounts import Accounts
from datman_flow.review.server import ReviewServer

REVIEWER, PASSWORD = "bench-reviewer", "bench-password-2026"
BUDGETS_MS = {"queue": 300.0, "session page": 500.0, "queue after a rating": 300.0,
              "rating save": 500.0}  # a save has no budget of its own: held to the page it is made from
TIMEOUT = (5.0, 120.0)  # seconds: connect, read (a cold page over 2,000 sessions may take a while)


class BenchmarkError(RuntimeError):
    """The app cannot be benchmarked: the message says what answered what."""


class HiddenInputs(HTMLParser):
    """The name -> value of every <input> of a page (the login form's csrf_token among them)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            found = dict(attrs)
            if found.get("name"):
                self.values[str(found["name"])] = found.get("value") or ""


def check_page(reply: requests.Response, what: str) -> requests.Response:
    if reply.status_code != 200:
        body = " ".join(reply.text[:200].split())
        raise BenchmarkError(f"{what}: {reply.request.method} {reply.url} answered {reply.status_code} ({body!r})")
    return reply


def csrf_token(page: requests.Response, request: str, what: str) -> str:
    """The page's hidden `csrf_token` input; BenchmarkError when the page has none."""
    check_page(page, what)
    inputs = HiddenInputs()
    inputs.feed(page.text)
    token = inputs.values.get("csrf_token")
    if not token:
        raise BenchmarkError(f"{request}: the page has no <input name=\"csrf_token\" value=...>")
    return token


def log_in(session: requests.Session, base: str) -> None:
    """Log in as the reviewer, as a browser would; BenchmarkError saying why not."""
    page = session.get(f"{base}/login", timeout=TIMEOUT)
    if page.status_code == 404:
        raise BenchmarkError(f"GET {base}/login answered 404: this review app has no login page yet "
                             f"(the app of issue 11, /work/wt/a, is not merged into this checkout)")
    token = csrf_token(page, f"GET {base}/login", "the login page")
    reply = session.post(f"{base}/login", data={"username": REVIEWER, "password": PASSWORD, "csrf_token": token},
                         timeout=TIMEOUT, allow_redirects=False)
    where = reply.headers.get("location", "")
    if reply.status_code not in (200, 302, 303) or not session.cookies or "/login" in where:
        raise BenchmarkError(f"POST {base}/login answered {reply.status_code}"
                             f"{f' (to {where})' if where else ''}{'' if session.cookies else ', no cookie'}: "
                             f"login refused")


@dataclass(frozen=True)
class Timing:
    page: str
    cold_ms: float
    runs_ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.runs_ms)  # nearest rank
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def timed_get(session: requests.Session, url: str, what: str, expect: str) -> float:
    started = time.perf_counter()
    reply = session.get(url, timeout=TIMEOUT)
    elapsed = (time.perf_counter() - started) * 1000
    check_page(reply, what)
    if reply.url.rstrip("/").endswith("/login"):
        raise BenchmarkError(f"{what}: GET {url} sent to the login page: the login did not hold")
    if expect not in reply.text:
        raise BenchmarkError(f"{what}: GET {url} answered 200 without {expect!r} in the page")
    return elapsed


def measure(session: requests.Session, base: str, label: str, requests_each: int) -> list[Timing]:
    pages = {"queue": (f"{base}/", "SPN01_"), "session page": (f"{base}/session/{label}", label)}
    cold = {page: timed_get(session, url, page, expect) for page, (url, expect) in pages.items()}
    out = []
    for page, (url, expect) in pages.items():
        timed_get(session, url, page, expect)  # warm-up
        out.append(Timing(page, cold[page], [timed_get(session, url, page, expect) for _ in range(requests_each)]))
    return out


def rate_then_queue(session: requests.Session, base: str, label: str, data_dir: Path,
                    requests_each: int) -> list[Timing]:
    """Save a rating, then open the queue: each timed, `requests_each` times."""
    from datman_flow.layout import DataLayout
    from datman_flow.store.review_rows import RatingImageRow

    images = DataLayout(data_dir).metric_store.read(RatingImageRow, label)
    if not images:
        raise BenchmarkError(f"{label} has no registered picture to rate")
    token = csrf_token(session.get(f"{base}/session/{label}", timeout=TIMEOUT), f"GET {base}/session/{label}",
                       "session page")
    saves, queues = [], []
    for k in range(requests_each):
        started = time.perf_counter()
        reply = session.post(f"{base}/session/{label}/rate", timeout=TIMEOUT, allow_redirects=False,
                             headers={"Accept": "application/json"},
                             data={"img_id": str(images[k % len(images)].id), "rating": str(k % 3), "notes": "bench",
                                   "points": "[]", "csrf_token": token})
        saves.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 200:
            raise BenchmarkError(f"POST /session/{label}/rate answered {reply.status_code}: {reply.text[:200]}")
        queues.append(timed_get(session, f"{base}/", "queue after a rating", "SPN01_"))
    return [Timing("rating save", saves[0], saves[1:]), Timing("queue after a rating", queues[0], queues[1:])]


def report(timings: list[Timing], sessions: int, requests_each: int) -> None:
    print(f"\n{sessions} sessions, {requests_each} requests per page after one warm-up; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'page':<21} {'cold ms':>9} {'median ms':>10} {'p90 ms':>8} {'budget ms':>10} {'median/budget':>14} "
          f"{'p90/budget':>11}")
    for t in timings:
        budget = BUDGETS_MS[t.page]
        verdict = "within" if t.p90_ms <= budget else "OVER"
        print(f"{t.page:<21} {t.cold_ms:>9.0f} {t.median_ms:>10.1f} {t.p90_ms:>8.1f} {budget:>10.0f} "
              f"{t.median_ms / budget:>14.2f} {t.p90_ms / budget:>11.2f}  {verdict} budget")


def prepare(data_dir: Path, sessions: int) -> str:
    """The data folder built (or reused, by its marker file); the label of the session page to time."""
    marker = data_dir / f".bench-review-{sessions}"
    if marker.exists():
        label = marker.read_text().strip()
        print(f"reusing the data folder {data_dir} ({sessions} sessions)")
    else:
        print(f"building {sessions} sessions in {data_dir} ...", flush=True)
        built = make_store(data_dir, sessions=sessions)
        label = built.pictured[0]
        print(f"  built in {built.seconds:.0f} s: {len(built.rated)} reviewed, pictures drawn for {label}")
        marker.write_text(label + "\n")
    accounts = Accounts(data_dir)
    if accounts.exists(REVIEWER):
        accounts.set_password(REVIEWER, PASSWORD)
    else:
        accounts.add(REVIEWER, PASSWORD)
    return label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000, help="sessions in the store (default 2000)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page (default 20)")
    parser.add_argument("--data", help="data folder to build and reuse (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        data_dir = Path(args.data) if args.data else Path(tmp) / "data"
        label = prepare(data_dir, args.sessions)
        try:
            with ReviewServer(data_dir) as server, requests.Session() as session:
                print(f"review app on {server.url}; logging in as {REVIEWER} ...")
                log_in(session, server.url)
                timings = measure(session, server.url, label, args.requests)
                timings += rate_then_queue(session, server.url, label, data_dir, args.requests)
        except BenchmarkError as exc:
            print(f"cannot benchmark the review app: {exc}", file=sys.stderr)
            return 1
        except requests.RequestException as exc:
            print(f"cannot benchmark the review app: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        report(timings, args.sessions, args.requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
