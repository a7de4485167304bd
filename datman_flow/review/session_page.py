"""`GET /session/{label}`: one session as a reviewer needs it (session_view.py gathers the
facts, templates/session.html lays them out): header facts, checks, each series with its QC
picture, key metrics beside the site's medians, flags, decision and pictures to rate; the forms
to rate, decide and sign off post to actions.py. A label that is not a session label, or that
the store does not know, is 404."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datman_flow.naming import InvalidLabel, parse_session_label
from datman_flow.pipeline.review_images import ensure_review_images
from datman_flow.review.rating_input import DECISIONS, MAX_NOTES, MAX_POINTS
from datman_flow.review.session_view import SessionView, read_session, session_view
from datman_flow.review.web import refuse, render
from datman_flow.store import QcSeriesRow, SeriesRow
from datman_flow.store.review_rows import RatingImageRow

if TYPE_CHECKING:
    from datman_flow.review.context import ReviewContext

logger = logging.getLogger(__name__)


def checked_label(request: Request) -> str | None:
    """The path's session label when it is one (as written), else None."""
    raw = request.path_params.get("label", "")
    try:
        return raw if parse_session_label(raw).label == raw else None
    except InvalidLabel:
        return None


def pictures_to_rate(ctx: ReviewContext, label: str, found: dict) -> tuple[list[RatingImageRow], str]:
    """The session's pictures to rate (rendered if missing: the rows already read are handed
    on, so nothing is read twice), and '' or why they could not be made (then the ones
    registered so far)."""
    registered = found[(RatingImageRow, None)]
    try:
        return ensure_review_images(ctx.layout, label, qc_series=found[(QcSeriesRow, None)],
                                    series=found[(SeriesRow, None)], images=registered), ""
    except Exception as exc:  # noqa: BLE001 - the page still shows everything else, and says why
        logger.exception("pictures to rate of %s could not be prepared", label)
        return list(registered), f"{type(exc).__name__}: {exc}"


def session_routes(ctx: ReviewContext) -> list[Route]:
    def gather(label: str) -> tuple[SessionView | None, str]:
        found = read_session(ctx.reader, label)
        if found is None:  # before any picture is drawn for it
            return None, ""
        images, problem = pictures_to_rate(ctx, label, found)
        return session_view(ctx.data_dir, ctx.medians, label, found, images), problem

    async def session_page(request: Request) -> Response:
        label = checked_label(request)
        if label is None:
            return refuse(ctx, request, 404, "not a session label")
        view, problem = await run_in_threadpool(gather, label)
        if view is None:
            return refuse(ctx, request, 404, f"no session {label} in the metric store")
        return render(ctx, request, "session.html", view=view, picture_problem=problem, decisions=DECISIONS,
                      max_notes=MAX_NOTES, max_points=MAX_POINTS)

    return [Route("/session/{label}", session_page, methods=["GET"], name="session")]
