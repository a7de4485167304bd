"""Where people review sessions: the base URL of the review app (`datman-flow review`) that the
board's actions and the alerts link to, from env DATMAN_REVIEW_URL (default the app's own
default address, http://127.0.0.1:8050), checked as the pictures' URL is (review/urls.py):
a plain http(s) base URL, nothing that could break out of a markdown link or a mail line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

from datman_flow.review.urls import BadPicturesUrl, check_base_url

REVIEW_URL_VAR = "DATMAN_REVIEW_URL"
DEFAULT_REVIEW_URL = "http://127.0.0.1:8050"


class BadReviewUrl(ValueError):
    """DATMAN_REVIEW_URL is not a plain http(s) base URL (the message names the variable)."""


def review_url_from(env: Mapping[str, str] | None = None) -> str:
    """The checked base URL of the review app: env DATMAN_REVIEW_URL, else the default."""
    env = os.environ if env is None else env
    value = env.get(REVIEW_URL_VAR, "")
    if not value.strip():
        return DEFAULT_REVIEW_URL
    try:
        return check_base_url(value, f"environment variable {REVIEW_URL_VAR}")
    except BadPicturesUrl as exc:
        raise BadReviewUrl(str(exc)) from None


def session_link(base_url: str, label: str) -> str:
    """`<base>/session/<label>`: the session's page in the review app (the label percent-encoded)."""
    return f"{base_url.rstrip('/')}/session/{quote(label, safe='')}"
