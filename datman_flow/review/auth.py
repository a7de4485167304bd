"""Logging in and out of the review app, and the middleware that lets nobody else in.

GET /login shows the form (with the session's CSRF token and where to go next); POST /login
checks the name and password against the reviewers' accounts (accounts.py) and starts a login
(logins.py) in a fresh session (a session fixed before login is worth nothing after it), then
303 to `next` (a path of this app only) or "/"; a wrong name or password gets the form again,
401, without saying which was wrong. POST /logout ends the login. Every other path of the app
(the MRIQC Web-API is mounted outside) needs a live login: a page is redirected to
/login?next=..., anything else is refused with 401. Logins and failed logins are audited.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from datman_flow.review.accounts import NAME, AccountError
from datman_flow.review.web import (
    LOGIN_KEY,
    USER_KEY,
    client_address,
    csrf_token,
    local_path,
    refuse,
    render,
)

if TYPE_CHECKING:
    from datman_flow.review.context import ReviewContext

LOGIN_PATH = "/login"
FAVICON = "/favicon.ico"
PUBLIC_PATHS = frozenset({LOGIN_PATH, FAVICON})
WRONG = "wrong name or password"
logger = logging.getLogger(__name__)


def logged_in_user(ctx: ReviewContext, session: dict) -> str | None:
    """The reviewer of a live login whose account still exists, else None."""
    user = ctx.logins.user_of(session.get(LOGIN_KEY), session.get(USER_KEY))
    try:
        return user if user is not None and ctx.accounts.exists(user) else None
    except AccountError:
        return None


def shown_name(name: str) -> str:
    """A name typed at a failed login, as the audit keeps it (never what cannot be a name: a
    password typed into the wrong field)."""
    return name if NAME.match(name) else "(not a reviewer name)"


class LoginRequired:
    def __init__(self, app: ASGIApp, ctx: ReviewContext) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        user = logged_in_user(self.ctx, scope["session"])
        if user is None:
            request = Request(scope)
            if scope["method"] in ("GET", "HEAD"):
                wanted = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
                if scope.get("query_string"):
                    wanted += "?" + scope["query_string"].decode("latin-1")
                response: Response = RedirectResponse(f"{LOGIN_PATH}?{urlencode({'next': local_path(wanted)})}",
                                                      status_code=303)
            else:
                response = refuse(self.ctx, request, 401, "log in first")
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


def auth_routes(ctx: ReviewContext) -> list[Route]:
    def form(request: Request, next_path: str, status: int = 200, error: str = "", name: str = "") -> Response:
        return render(ctx, request, "login.html", status=status, next=next_path, error=error, name=name)

    async def login_page(request: Request) -> Response:
        next_path = local_path(request.query_params.get("next"))
        if logged_in_user(ctx, request.session) is not None:
            return RedirectResponse(next_path, status_code=303)
        csrf_token(request)
        return form(request, next_path)

    async def login(request: Request) -> Response:
        data = await request.form()
        name, password = str(data.get("username", "")), str(data.get("password", ""))
        next_path, client = local_path(data.get("next")), client_address(request)
        if ctx.throttle.blocked(client):
            await run_in_threadpool(ctx.audit.record, "login_refused", shown_name(name), client=client,
                                    reason="too many failed logins")
            return refuse(ctx, request, 429, "too many failed logins from this address: wait 10 minutes")
        try:
            ok = await run_in_threadpool(ctx.accounts.verify, name, password)
        except AccountError:
            logger.exception("login of %s refused: the accounts file cannot be used", shown_name(name))
            return refuse(ctx, request, 500, "the reviewers' accounts cannot be read: ask the data manager "
                                             "(the app's log says why)")
        if not ok:
            ctx.throttle.failed(client)
            await run_in_threadpool(ctx.audit.record, "login_failed", shown_name(name), client=client)
            return form(request, next_path, status=401, error=WRONG, name=name if NAME.match(name) else "")
        ctx.throttle.succeeded(client)
        request.session.clear()  # a new session: nothing from before the login carries over
        request.session.update({USER_KEY: name, LOGIN_KEY: ctx.logins.start(name)})
        csrf_token(request)
        await run_in_threadpool(ctx.audit.record, "login", name, client=client)
        return RedirectResponse(next_path, status_code=303)

    async def logout(request: Request) -> Response:
        user = str(request.session.get(USER_KEY, ""))
        ctx.logins.end(request.session.get(LOGIN_KEY))
        request.session.clear()
        await run_in_threadpool(ctx.audit.record, "logout", user, client=client_address(request))
        return RedirectResponse(LOGIN_PATH, status_code=303)

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)  # none: but browsers ask on every page

    return [Route(LOGIN_PATH, login_page, methods=["GET"], name="login_page"),
            Route(FAVICON, favicon, methods=["GET"], name="favicon"),
            Route(LOGIN_PATH, login, methods=["POST"], name="login"),
            Route("/logout", logout, methods=["POST"], name="logout")]
