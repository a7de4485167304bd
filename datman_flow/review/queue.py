"""The review queue, `GET /`: sessions awaiting review, newest scan first, filtered by review
state (`state=all|pending|failed|passed`; none: pending, and failed but not yet signed off), study,
site and tag (sessions with a converted series of that tag), PAGE_SIZE rows a page; and
`GET /next`: the pending session (within the same filters) with the fewest ratings, the newest
among equals, as the A2CPS kit hands out its next image."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from datman_flow.naming import is_code
from datman_flow.review.queue_rows import STATES, next_to_review, select
from datman_flow.review.web import refuse, render

if TYPE_CHECKING:
    from datman_flow.review.context import ReviewContext

PAGE_SIZE = 200
FILTERS = ("study", "site", "tag")


class BadFilter(ValueError):
    pass


def read_filters(request: Request) -> dict[str, str]:
    """The query's filters, checked: a state of STATES, codes of letters and digits."""
    params = request.query_params
    unknown = sorted(set(params) - {"state", "page", "done", *FILTERS})
    if unknown:
        raise BadFilter(f"unknown parameter {unknown[0]!r} (use state, study, site, tag, page)")
    out = {"state": params.get("state", "")}
    if out["state"] not in ("", *STATES):
        raise BadFilter(f"state {out['state'][:40]!r}: one of {', '.join(STATES)}")
    for name in FILTERS:
        value = params.get(name, "")
        if value and not is_code(value) or len(value) > 64:
            raise BadFilter(f"{name} {value[:40]!r}: letters and digits only")
        out[name] = value
    return out


def queue_routes(ctx: ReviewContext) -> list[Route]:
    async def queue_page(request: Request) -> Response:
        try:
            filters = read_filters(request)
            page = int(request.query_params.get("page", "1"))
            if not 1 <= page <= 100_000:
                raise ValueError
        except BadFilter as exc:
            return refuse(ctx, request, 400, str(exc))
        except ValueError:
            return refuse(ctx, request, 400, "page: a whole number from 1")
        every = await run_in_threadpool(ctx.queue.rows)
        rows = select(every, **filters)
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        shown = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        query = {k: v for k, v in filters.items() if v}
        return render(ctx, request, "queue.html", rows=shown, total=len(rows), recorded=len(every), page=page,
                      pages=pages, filters=filters, states=STATES, query=urlencode(query),
                      studies=sorted({r.study for r in every if r.study}),
                      sites=sorted({r.site for r in every if r.site}),
                      tags=sorted({t for r in every for t in r.tags}),
                      done=request.query_params.get("done") == "1")

    async def next_session(request: Request) -> Response:
        try:
            filters = read_filters(request)
        except BadFilter as exc:
            return refuse(ctx, request, 400, str(exc))
        filters["state"] = "pending"
        chosen = next_to_review(select(await run_in_threadpool(ctx.queue.rows), **filters))
        if chosen is None:
            query = {k: v for k, v in filters.items() if v and k != "state"}
            return RedirectResponse("/?" + urlencode({**query, "done": "1"}), status_code=303)
        return RedirectResponse(f"/session/{quote(chosen.label, safe='')}", status_code=303)

    return [Route("/", queue_page, methods=["GET"], name="queue"),
            Route("/next", next_session, methods=["GET"], name="next")]
