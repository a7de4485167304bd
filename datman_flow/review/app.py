"""The review app: a Starlette application over the data folder, assembled here.

    security headers (headers.py)                          every response
    ├── the MRIQC Web-API routes (mriqc_api.py)            their own token: no cookie, no CSRF
    └── session cookie `datman_review` (signed, httponly, samesite=strict)
        └── login required (auth.py), except /login
            └── CSRF and Origin checked on every POST (csrf.py)
                └── /login /logout (auth.py), / and /next (queue.py), /session/{label}
                    (session_page.py), its POST actions (actions.py), /pictures/... (below)

Everything the routes share is one ReviewContext (context.py), made here per app.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route

from datman_flow.review.actions import action_routes
from datman_flow.review.auth import LoginRequired, auth_routes
from datman_flow.review.context import ReviewContext, make_context, warm_up
from datman_flow.review.csrf import CsrfGuard
from datman_flow.review.headers import SecurityHeaders
from datman_flow.review.logins import MAX_AGE
from datman_flow.review.mriqc_api import mriqc_routes
from datman_flow.review.pictures import picture_file
from datman_flow.review.queue import queue_routes
from datman_flow.review.secret import review_secret
from datman_flow.review.session_page import session_routes
from datman_flow.review.urls import PICTURES_PREFIX
from datman_flow.review.web import refuse

COOKIE = "datman_review"
# pictures are redrawn when a session is run again (same name): browsers keep them 5 minutes
CACHE_CONTROL = "private, max-age=300"


def picture_routes(ctx: ReviewContext) -> list[Route]:
    """`GET /pictures/{session}/{file}`: a session's QC picture or picture to rate, else 404."""

    async def picture(request: Request) -> Response:
        path = picture_file(ctx.data_dir, request.path_params["session"], request.path_params["file"])
        if path is None:
            return refuse(ctx, request, 404, "no such picture")
        return FileResponse(path, media_type="image/png",
                            headers={"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"})

    return [Route(PICTURES_PREFIX + "/{session}/{file}", picture, methods=["GET", "HEAD"], name="picture")]


def create_app(data_dir: Path, env: Mapping[str, str] | None = None, https_only: bool = False) -> Starlette:
    """The app over `data_dir`; the cookie's key from env DATMAN_REVIEW_SECRET or
    <data>/state/review_secret (secret.py); `https_only`: the cookie is sent over HTTPS only
    (set it when a TLS proxy is in front)."""
    ctx = make_context(Path(data_dir))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return refuse(ctx, request, exc.status_code, str(exc.detail))

    reviewers = Starlette(
        routes=[*auth_routes(ctx), *queue_routes(ctx), *session_routes(ctx), *action_routes(ctx),
                *picture_routes(ctx)],
        middleware=[Middleware(SessionMiddleware, secret_key=review_secret(ctx.data_dir, env), session_cookie=COOKIE,
                               max_age=MAX_AGE, same_site="strict", https_only=https_only),
                    Middleware(LoginRequired, ctx=ctx), Middleware(CsrfGuard, ctx=ctx)],
        exception_handlers={HTTPException: http_error})
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=warm_up, args=(ctx,), name="review-warm-up", daemon=True).start()
        yield

    app = Starlette(routes=[*mriqc_routes(ctx.data_dir), Mount("", app=reviewers)],
                    middleware=[Middleware(SecurityHeaders)], lifespan=lifespan)
    app.state.review = ctx  # for tests and the benchmark: the caches' counters
    return app
