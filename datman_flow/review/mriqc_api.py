"""MRIQC's Web-API, as far as a report's rating widget speaks it: `POST /api/v1/rating` (MRIQC's
older widget posts to `<webapi url>/rating`) and `POST /api/v1` (nireports' widget posts to the
webapi url itself), the body `{rating, md5sum, name, comment}`, matched to a series by the
NIfTI's md5sum and recorded in the review tables (review/mriqc_rating.py).

Authentication is the reviewer's API token in the `Authorization` header (`Bearer <token>`
accepted too), never the app's login cookie: a page from another site can make a browser send
its cookies, not a token it does not know, so no CSRF form is needed. The report is opened from
file:// or another origin, so the routes answer CORS preflights and put
`Access-Control-Allow-Origin: *` on every answer (no credentials are involved). Answers are
shaped as Eve's: `{"_status": "OK", "_id": ...}` with 201, or `{"_status": "ERR", "_error":
{"code", "message"}}`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from datman_flow.review.accounts import AccountError, Accounts
from datman_flow.review.mriqc_rating import RatingRefused, parse_rating, record_rating
from datman_flow.review.series_index import SeriesByMd5
from datman_flow.store.metric_store import MetricStore

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MAX_BODY = 64 * 1024  # a rating with a long comment is a few KB
ALLOW_ORIGIN = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT = {**ALLOW_ORIGIN, "Access-Control-Allow-Methods": "POST, OPTIONS",
             "Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Max-Age": "600"}


class BodyTooLarge(ValueError):
    pass


def error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"_status": "ERR", "_error": {"code": code, "message": message}}, status_code=code,
                        headers=ALLOW_ORIGIN)


def token_of(header: str | None) -> str:
    """The token of an `Authorization` header (`<token>` or `Bearer <token>`), or ''."""
    value = (header or "").strip()
    scheme, _, rest = value.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else value


async def limited_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request's body, refused (BodyTooLarge) past `limit` bytes, before reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"{declared} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def mriqc_routes(data_dir: Path) -> list[BaseRoute]:
    """The Web-API routes the review app serves (token-authenticated, no cookie, no CSRF form)."""
    data_dir = Path(data_dir).resolve()
    accounts, store, index = Accounts(data_dir), MetricStore.under(data_dir), SeriesByMd5(data_dir)

    async def rating(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PREFLIGHT)
        token = token_of(request.headers.get("authorization"))
        if not token:
            return error(401, "no API token: send it in the Authorization header (ask the data manager for one)")
        try:
            user = await run_in_threadpool(accounts.user_for_token, token)
        except AccountError as exc:
            log.error("MRIQC rating refused: %s", exc)
            return error(503, "the reviewers' accounts cannot be read; the data manager must fix them")
        if user is None:
            return error(401, "unknown API token")
        try:
            body = await limited_body(request)
        except BodyTooLarge as exc:
            return error(413, f"the body is too large ({exc}; at most {MAX_BODY} bytes)")
        try:
            given = parse_rating(body)
        except RatingRefused as exc:
            return error(422, str(exc))
        series = await run_in_threadpool(index.find, given.md5sum)
        if series is None:
            return error(404, f"no series with md5sum {given.md5sum} (not measured here, or measured before "
                              f"its NIfTI changed)")
        row = await run_in_threadpool(record_rating, store, data_dir, series, user, given)
        log.info("MRIQC rating %g of %s series %s by %s: rating %d", given.value, series.session,
                 series.series_number, user, row.id)
        return JSONResponse({"_status": "OK", "_id": str(row.id)}, status_code=201, headers=ALLOW_ORIGIN)

    return [Route(f"{API_PREFIX}/rating", rating, methods=["POST", "OPTIONS"]),
            Route(API_PREFIX, rating, methods=["POST", "OPTIONS"])]
