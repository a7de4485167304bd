"""Cross-site request forgery refused (an ASGI middleware inside the session middleware).

Every request that may change something (any method but GET, HEAD, OPTIONS) must carry the
session's CSRF token, in the form field `csrf_token` (an urlencoded form) or the header
`X-CSRF-Token` (the pages' script), and, when the browser says where it comes from (Origin),
come from this app's own origin. Otherwise: 403 with the reason. The body is read here (at most
MAX_BODY bytes: 413 beyond) and handed on unchanged. The MRIQC Web-API routes are mounted
outside this middleware: they authenticate with a token of their own, not a cookie.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datman_flow.review.web import CSRF_KEY, refuse

if TYPE_CHECKING:
    from datman_flow.review.context import ReviewContext

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BODY = 256 * 1024  # a rating with 50 clicks and 2,000 characters of notes is under 10 KB
FORM = "application/x-www-form-urlencoded"


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def own_origin(scope: Scope) -> str:
    """scheme://host[:port] as the browser reached this app (the Host header)."""
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
    if not host and scope.get("server"):
        name, port = scope["server"]
        host = f"{name}:{port}"
    return f"{scope.get('scheme', 'http')}://{host}".lower()


def sent_token(request: Request, body: bytes) -> str:
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM:
        values = parse_qs(body.decode("latin-1"), max_num_fields=200).get("csrf_token", [])
        return values[0] if len(values) == 1 else ""
    return ""


def refusal_reason(request: Request, body: bytes) -> str:
    """'' when the request may go on, else why not."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != own_origin(request.scope):
        return f"cross-origin request refused (Origin {origin[:100]!r} is not this app's)"
    expected = request.session.get(CSRF_KEY)
    if not isinstance(expected, str) or not expected:
        return "no session (cookies off, or the session expired): reload the page and try again"
    token = sent_token(request, body)
    if not token:
        return "CSRF token missing: send the form's csrf_token field or the X-CSRF-Token header"
    if not hmac.compare_digest(token.encode(), expected.encode()):
        return "CSRF token does not match this session: reload the page and try again"
    return ""


class CsrfGuard:
    def __init__(self, app: ASGIApp, ctx: ReviewContext) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            body = await read_body(receive, MAX_BODY)
        except BodyTooLarge:
            await refuse(self.ctx, request, 413, f"request body over {MAX_BODY // 1024} KB")(scope, receive, send)
            return
        reason = refusal_reason(request, body)
        if reason:
            await refuse(self.ctx, request, 403, reason)(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
