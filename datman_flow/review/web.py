"""Small helpers every route of the review app uses: rendering a page with the reviewer, the
CSRF token and the CSP nonce; refusing a request with its reason (JSON for scripts, a page for
people); the client's address; a `next` that can only be a path of this app."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from datman_flow.review.context import ReviewContext

CSRF_KEY, USER_KEY, LOGIN_KEY, SITTINGS_KEY = "csrf", "user", "login", "sittings"
MAX_NEXT = 2000


def wants_json(request: HTTPConnection) -> bool:
    return "application/json" in request.headers.get("accept", "")


def client_address(request: HTTPConnection) -> str:
    return request.client.host if request.client else ""


def csrf_token(request: HTTPConnection) -> str:
    """The session's CSRF token, made on first use (the session cookie then carries it)."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


def current_user(request: HTTPConnection) -> str:
    """The logged-in reviewer (set by auth.LoginRequired; '' on the login page)."""
    return str(request.scope.get("state", {}).get("user", ""))


def nonce(request: HTTPConnection) -> str:
    return str(request.scope.get("state", {}).get("csp_nonce", ""))


def render(ctx: ReviewContext, request: Request, template: str, status: int = 200, **values: object) -> Response:
    context = {"user": current_user(request), "csrf_token": csrf_token(request), "nonce": nonce(request), **values}
    return ctx.templates.TemplateResponse(request, template, context, status_code=status)


def refuse(ctx: ReviewContext, request: Request, status: int, reason: str) -> Response:
    """`status` with `reason`: {"error": reason} to a script, else a page that says it."""
    if wants_json(request):
        return JSONResponse({"error": reason}, status_code=status)
    return render(ctx, request, "error.html", status=status, status_code=status, reason=reason)


def local_path(value: object) -> str:
    """`value` when it is a path of this app ('/...', not '//host' nor '/\\host', no scheme, no
    control characters), else '/': a login's `next` never sends anyone to another site."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_NEXT:
        return "/"
    if value.startswith("//") or "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value
