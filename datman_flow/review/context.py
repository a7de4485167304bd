"""Everything the review app's routes share, made once per app by `make_context` and handed to
each route module (closures, no module state): the data folder, the accounts, the audit log,
the templates, the logins, and the in-memory tables that keep the pages fast."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
from starlette.templating import Jinja2Templates

from datman_flow.layout import DataLayout
from datman_flow.review.accounts import Accounts
from datman_flow.review.audit import AuditLog
from datman_flow.review.logins import LoginRegistry, LoginThrottle
from datman_flow.review.queue_rows import ReviewQueue
from datman_flow.store.review_queries import SiteMetricValues

TEMPLATES = Path(__file__).with_name("templates")


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


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = number
    env.filters["when"] = when
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
    logins: LoginRegistry
    throttle: LoginThrottle


def make_context(data_dir: Path) -> ReviewContext:
    layout = DataLayout(Path(data_dir).resolve())
    return ReviewContext(layout.root, layout, Accounts(layout.root), AuditLog(layout.root), make_templates(),
                         ReviewQueue(layout.metric_store), SiteMetricValues(layout.metric_store), LoginRegistry(),
                         LoginThrottle())
