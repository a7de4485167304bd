"""Security headers on every response of the review app (an ASGI middleware, outermost).

Each request gets a fresh CSP nonce (`request.state.csp_nonce`): the pages' one inline script
and style carry it, and nothing else may run. No page may be framed (clickjacking on the
rating buttons), no response is sniffed into another type, no URL leaks to another site in a
Referer, and pages with reviewers' data are not kept in caches (pictures keep their own
Cache-Control)."""

from __future__ import annotations

import secrets

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
FIXED = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
         "Cross-Origin-Opener-Policy": "same-origin"}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(18)
        scope.setdefault("state", {})["csp_nonce"] = nonce

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in FIXED.items():
                    if name not in headers:
                        headers[name] = value
                headers["Content-Security-Policy"] = CSP.format(nonce=nonce)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)
