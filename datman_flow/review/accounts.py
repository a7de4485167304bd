"""Reviewers' accounts: `<data>/state/reviewers.json`, one entry per name with a salted scrypt
hash of the password (never the password) and the SHA-256 of each API token (an MRIQC report's
rating widget sends one in its Authorization header; the token itself is shown once, when made).

The file is written atomically, readable by its owner and the lab's group as the umask allows,
never by others. A file that is not what this module writes is refused with its path and the
reason, never rewritten: fixing it is a person's job.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from datman_flow.atomic import atomic_path, private_mode

ACCOUNTS_FILE = "reviewers.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # scrypt of a megabyte-long "password" is a denial of service
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # 16 MiB, about 50 ms: a login's cost, not a page view's


class AccountError(ValueError):
    """A name, password or accounts file that cannot be used; the message says why."""


def accounts_path(data_dir: Path) -> Path:
    return Path(data_dir) / "state" / ACCOUNTS_FILE


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise AccountError(f"reviewer name {name!r}: 1-64 letters, digits, '.', '_' or '-', starting with a "
                           f"letter or digit")
    return name


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        found = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), dklen=32, n=int(n), r=int(r),
                               p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, base64.b64decode(digest))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Reviewer:
    name: str
    created: str  # ISO time, UTC
    tokens: int  # how many API tokens the reviewer has


class Accounts:
    """`Accounts(data_dir)`: read on every call, so the app sees a reviewer added by the CLI
    without a restart."""

    def __init__(self, data_dir: Path) -> None:
        self.path = accounts_path(data_dir)

    def _load(self) -> dict[str, dict]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise AccountError(f"{self.path}: cannot be read ({exc.strerror})") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise AccountError(f"{self.path}: not JSON ({exc}); fix or remove it by hand") from None
        if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) and isinstance(v.get("password"), str)
                for k, v in data.items()):
            raise AccountError(f"{self.path}: not a reviewers file (name -> {{password, ...}}); fix or remove it")
        return data

    def _save(self, data: dict[str, dict]) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            os.chmod(tmp, private_mode())

    def reviewers(self) -> list[Reviewer]:
        return [Reviewer(name, str(entry.get("created", "")), len(entry.get("tokens", [])))
                for name, entry in sorted(self._load().items())]

    def exists(self, name: str) -> bool:
        return name in self._load()

    def add(self, name: str, password: str) -> None:
        """A new reviewer (AccountError if the name is taken or the password too short)."""
        check_name(name)
        if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise AccountError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        data = self._load()
        if name in data:
            raise AccountError(f"reviewer {name!r} exists already (`datman-flow reviewer password {name}` "
                               f"sets a new password)")
        data[name] = {"password": hash_password(password), "created": datetime.now(UTC).isoformat(timespec="seconds"),
                      "tokens": []}
        self._save(data)

    def set_password(self, name: str, password: str) -> None:
        if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise AccountError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        data = self._load()
        if name not in data:
            raise AccountError(f"no reviewer {name!r}")
        data[name]["password"] = hash_password(password)
        self._save(data)

    def remove(self, name: str) -> None:
        data = self._load()
        if data.pop(name, None) is None:
            raise AccountError(f"no reviewer {name!r}")
        self._save(data)

    def verify(self, name: str, password: str) -> bool:
        """Whether `password` is `name`'s (False for an unknown name, after the same work)."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return False
        entry = self._load().get(name) if isinstance(name, str) else None
        if entry is None:
            password_matches(password, hash_password("not a reviewer"))  # the same time as a known name
            return False
        return password_matches(password, entry["password"])

    def new_token(self, name: str) -> str:
        """A new API token for `name` (shown once: only its digest is kept)."""
        data = self._load()
        if name not in data:
            raise AccountError(f"no reviewer {name!r}")
        token = secrets.token_urlsafe(32)
        data[name].setdefault("tokens", []).append(token_digest(token))
        self._save(data)
        return token

    def user_for_token(self, token: str) -> str | None:
        """The reviewer whose API token this is, or None."""
        if not isinstance(token, str) or not 16 <= len(token) <= 256:
            return None
        digest = token_digest(token.strip())
        for name, entry in self._load().items():
            if any(hmac.compare_digest(digest, str(d)) for d in entry.get("tokens", [])):
                return name
        return None
