"""Everything the review app's routes share, made once per app by `make_context` and handed to
each route module (closures, no module state): the data folder, the accounts, the audit log,
the templates, the logins, and the in-memory tables that keep the pages fast."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
from starlette.templating import Jinja2Templates

from datman_flow.layout import DataLayout
from datman_flow.qc.kinds import usual_text
from datman_flow.review.accounts import Accounts
from datman_flow.review.audit import AuditLog
from datman_flow.review.logins import LoginRegistry, LoginThrottle
from datman_flow.review.queue_rows import ReviewQueue
from datman_flow.store.review_queries import SessionReader, SiteMetricValues

TEMPLATES = Path(__file__).with_name("templates")
logger = logging.getLogger(__name__)


def number(value: object) -> str:
    """A metric as a reviewer reads it: 4 significant digits, '-' when missing."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return str(value)


def when(value: object) -> str:
    """A naive UTC time as 'YYYY-MM-DD HH:MM UTC'."""
    return f"{value:%Y-%m-%d %H:%M} UTC" if isinstance(value, datetime) else str(value or "")


def accepted(low: float | None, high: float | None) -> str:
    """A flag's accepted range as the QC pictures word it: '8 - 12', '>= 8', '<= 0.5'."""
    return usual_text((low, high)) or "-"


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = number
    env.filters["when"] = when
    env.globals["accepted"] = accepted
    return Jinja2Templates(env=env)


@dataclass(frozen=True)
class ReviewContext:
    data_dir: Path
    layout: DataLayout
    accounts: Accounts
    audit: AuditLog
    templates: Jinja2Templates
    queue: ReviewQueue
    medians: SiteMetricValues
    reader: SessionReader
    logins: LoginRegistry
    throttle: LoginThrottle
    warmed: threading.Event  # set once warm_up has read the tables (or failed to)


def warm_up(ctx: ReviewContext) -> None:
    """Read the queue's tables and the site medians once (seconds with 2,000 sessions), so that
    the first reviewer of the day does not wait for it: started in a thread as the app starts."""
    try:
        ctx.queue.rows()
        ctx.medians.refresh(wait=True)
    except Exception:  # noqa: BLE001 - the first page will try again and show the error
        logger.exception("warming up the review app's tables failed")
    finally:
        ctx.warmed.set()


def make_context(data_dir: Path) -> ReviewContext:
    layout = DataLayout(Path(data_dir).resolve())
    return ReviewContext(layout.root, layout, Accounts(layout.root), AuditLog(layout.root), make_templates(),
                         ReviewQueue(layout.metric_store), SiteMetricValues(layout.metric_store),
                         SessionReader(layout.metric_store), LoginRegistry(), LoginThrottle(), threading.Event())
