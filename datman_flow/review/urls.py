"""Links to the review app's pictures (`datman-flow review`), for the metadata shown in the
Dagster UI; the base URL comes from DatmanSettings.pictures_url or env DATMAN_PICTURES_URL.
Pure functions of text: no Starlette here."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import PurePath
from urllib.parse import quote, urlsplit

PICTURES_URL_VAR = "DATMAN_PICTURES_URL"
PICTURES_PREFIX = "/pictures"
# characters that would end a markdown link or break out of it: never in a base URL
_UNSAFE = re.compile(r"[\s()<>\[\]\"'`\\]")


class BadPicturesUrl(ValueError):
    """A base URL for the picture links that is not a plain http(s) URL."""


def check_base_url(url: str, where: str) -> str:
    """`url` without a trailing '/', after checking that it is http(s)://host[:port][/path]."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise BadPicturesUrl(f"{where}: {url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadPicturesUrl(f"{where}: {url!r} must be an http:// or https:// URL with a host, "
                             f"e.g. http://127.0.0.1:8050 (where `datman-flow review` listens)")
    if parts.query or parts.fragment or parts.username or parts.password or _UNSAFE.search(text):
        raise BadPicturesUrl(f"{where}: {url!r} must be a plain base URL: no query, fragment, credentials, "
                             f"spaces, quotes or brackets")
    return text.rstrip("/")


def pictures_url_from(option: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The checked base URL of the picture server: `option`, else env DATMAN_PICTURES_URL, else ''
    (no links: the UI then shows the thumbnail and the server path)."""
    if option:
        return check_base_url(option, "the pictures URL")
    env = os.environ if env is None else env
    value = env.get(PICTURES_URL_VAR, "")
    return check_base_url(value, f"environment variable {PICTURES_URL_VAR}") if value.strip() else ""


def picture_url(base_url: str, label: str, png_path: str | PurePath) -> str:
    """`<base>/pictures/<label>/<file name>`, each part percent-encoded: the full-size picture."""
    name = PurePath(png_path).name
    return f"{base_url.rstrip('/')}{PICTURES_PREFIX}/{quote(label, safe='')}/{quote(name, safe='')}"
