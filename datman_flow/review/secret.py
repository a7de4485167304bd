"""The key the review app signs its session cookie with: env DATMAN_REVIEW_SECRET, else a random
key generated once into `<data>/state/review_secret` (readable by its owner only) and read back on
every start, so that reviewers stay logged in across restarts of one data folder's app (logins
themselves do not: see auth.py). Made atomically: a temporary file hard-linked into place, so two
apps starting at once agree on one key and neither sees half a file."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

SECRET_VAR = "DATMAN_REVIEW_SECRET"
SECRET_FILE = "review_secret"
MIN_SECRET = 32  # characters


class SecretError(ValueError):
    """A secret that cannot be used; the message names where it came from."""


def secret_path(data_dir: Path) -> Path:
    return Path(data_dir) / "state" / SECRET_FILE


def _checked(value: str, where: str) -> str:
    value = value.strip()
    if len(value) < MIN_SECRET:
        raise SecretError(f"{where}: the review app's secret must have at least {MIN_SECRET} characters "
                          f"(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)")
    return value


def _make_secret(path: Path) -> None:
    """A new key at `path` (owner-only), unless another process made one first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        try:
            os.write(handle, (secrets.token_urlsafe(48) + "\n").encode())
            os.fsync(handle)
        finally:
            os.close(handle)
        try:
            os.link(tmp, path)  # never replaces a key another app made meanwhile
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def review_secret(data_dir: Path, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if env.get(SECRET_VAR, "").strip():
        return _checked(env[SECRET_VAR], f"environment variable {SECRET_VAR}")
    path = secret_path(data_dir)
    if not path.exists():
        _make_secret(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecretError(f"{path}: cannot be read ({exc.strerror}); run the app as its owner or set "
                          f"{SECRET_VAR}") from None
    return _checked(text, str(path))
