"""What reviewers change, each a new row (never an overwrite) and an audit line:

- `POST /session/{label}/rate` (img_id, rating 0-2, notes, source_data_issue, points as JSON
  [{x, y}] in the picture's pixels): a RatingSessionRow for the reviewer's sitting (one per
  login, scanning session and step; its id kept in the session cookie), a RatingRow, and one
  RatingCoordinateRow per click (no click: one row with x and y NULL), all with one `created`;
- `POST /session/{label}/signoff` (comment): a SignOffRow;
- `POST /session/{label}/series/{number}/decision` (decision blacklisted|flagged|cleared, reason):
  a SeriesDecisionRow for a series the session has.

A form gets 303 back to the page; a script (Accept: application/json) gets JSON. Bad input is
refused with 400 and the reason (rating_input.py), an unknown session or series with 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from datman_flow.review.images import image_file, image_size
from datman_flow.review.rating_input import BadInput, parse_decision, parse_rating, text_field
from datman_flow.review.scales import Rating
from datman_flow.review.session_page import checked_label
from datman_flow.review.web import SITTINGS_KEY, client_address, current_user, refuse, wants_json
from datman_flow.store import SeriesRow, SessionRow
from datman_flow.store.review_queries import Wanted
from datman_flow.store.review_rows import (
    RatingCoordinateRow,
    RatingImageRow,
    RatingRow,
    RatingSessionRow,
    SeriesDecisionRow,
    SignOffRow,
)

if TYPE_CHECKING:
    from datman_flow.review.context import ReviewContext

MAX_SITTINGS = 40  # sittings remembered in the cookie (it must stay under 4 KB)


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class Saved:
    rating: RatingRow
    clicks: int
    sitting: int
    step: int


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def sitting_key(label: str, step: int) -> str:
    return f"{label}/{step}"


def existing(ctx: ReviewContext, label: str, *wanted: Wanted) -> dict[Wanted, list]:
    """The session's rows of `wanted`; NotFound when the store has no session `label`."""
    found = ctx.reader.rows(label, [(SessionRow, None), *wanted]) if ctx.layout.metric_store.exists else {}
    if not found or not found[(SessionRow, None)]:
        raise NotFound(f"no session {label} in the metric store")
    return found


def save_rating(ctx: ReviewContext, label: str, user: str, form: dict, sittings: dict, client: str) -> Saved:
    store = ctx.layout.metric_store
    found = existing(ctx, label, (RatingImageRow, None), (RatingSessionRow, None))
    images = {i.id: i for i in found[(RatingImageRow, None)]}
    sizes = {i.id: image_size(i, image_file(ctx.data_dir, label, i)) for i in images.values()}
    given = parse_rating(form, sizes)
    image, created = images[given.img_id], now_utc()
    sitting = sittings.get(sitting_key(label, image.step))
    known = {s.id for s in found[(RatingSessionRow, None)] if s.user == user and s.step == image.step}
    if sitting not in known:
        (row,) = store.append(RatingSessionRow, label, [RatingSessionRow(0, image.step, user, created, label)])
        sitting = row.id
    (rating,) = store.append(RatingRow, label, [RatingRow(0, given.source_data_issue, int(given.rating), image.id,
                                                          sitting, given.notes, created, label, user, "review")])
    clicks = [RatingCoordinateRow(0, given.source_data_issue, x, y, image.id, sitting, given.notes, created, label,
                                  user) for x, y in given.points]
    store.append(RatingCoordinateRow, label, clicks or [RatingCoordinateRow(
        0, given.source_data_issue, None, None, image.id, sitting, given.notes, created, label, user)])
    ctx.audit.record("rating", user, client=client, session=label, series=image.series_number, image=image.id,
                     rating=given.rating.name, rating_id=rating.id, sitting=sitting, notes=given.notes,
                     source_data_issue=given.source_data_issue, clicks=[[x, y] for x, y in given.points])
    return Saved(rating, len(given.points), sitting, image.step)


def save_signoff(ctx: ReviewContext, label: str, user: str, form: dict, client: str) -> SignOffRow:
    store = ctx.layout.metric_store
    existing(ctx, label)
    comment = text_field(form, "comment")
    (row,) = store.append(SignOffRow, label, [SignOffRow(0, label, user, comment, now_utc())])
    ctx.audit.record("signoff", user, client=client, session=label, comment=comment, signoff_id=row.id)
    return row


def save_decision(ctx: ReviewContext, label: str, number: str, user: str, form: dict,
                  client: str) -> SeriesDecisionRow:
    store = ctx.layout.metric_store
    found = existing(ctx, label, (SeriesRow, None))
    series = next((s for s in found[(SeriesRow, None)] if s.series_number == number), None)
    if series is None:
        raise NotFound(f"session {label} has no series {number[:20]!r}")
    decision, reason = parse_decision(form)
    (row,) = store.append(SeriesDecisionRow, label, [SeriesDecisionRow(0, label, number, series.tag or "", decision,
                                                                       reason, user, now_utc())])
    ctx.audit.record("decision", user, client=client, session=label, series=number, decision=decision,
                     reason=reason, decision_id=row.id)
    return row


def action_routes(ctx: ReviewContext) -> list[Route]:
    def back(request: Request, label: str, anchor: str, payload: dict) -> Response:
        if wants_json(request):
            return JSONResponse({"ok": True, **payload})
        return RedirectResponse(f"/session/{quote(label, safe='')}#{anchor}", status_code=303)

    async def run(request: Request, work, *args) -> object | Response:
        try:
            return await run_in_threadpool(work, ctx, *args)
        except BadInput as exc:
            return refuse(ctx, request, 400, str(exc))
        except NotFound as exc:
            return refuse(ctx, request, 404, str(exc))

    async def rate(request: Request) -> Response:
        label = checked_label(request)
        if label is None:
            return refuse(ctx, request, 404, "not a session label")
        form = dict(await request.form())
        kept = request.session.get(SITTINGS_KEY)
        sittings = dict(kept) if isinstance(kept, dict) else {}
        saved = await run(request, save_rating, label, current_user(request), form, sittings, client_address(request))
        if isinstance(saved, Response):
            return saved
        assert isinstance(saved, Saved)
        key = sitting_key(label, saved.step)
        sittings.pop(key, None)  # the newest last: the oldest are forgotten first
        sittings[key] = saved.sitting
        request.session[SITTINGS_KEY] = dict(list(sittings.items())[-MAX_SITTINGS:])
        r = saved.rating
        return back(request, label, f"img-{r.img_id}", {
            "rating_id": r.id, "img_id": r.img_id, "rating": r.rating, "rating_name": Rating(r.rating).name,
            "clicks": saved.clicks, "sitting": saved.sitting, "created": r.created.isoformat()})

    async def signoff(request: Request) -> Response:
        label = checked_label(request)
        if label is None:
            return refuse(ctx, request, 404, "not a session label")
        form = dict(await request.form())
        row = await run(request, save_signoff, label, current_user(request), form, client_address(request))
        if isinstance(row, Response):
            return row
        assert isinstance(row, SignOffRow)
        return back(request, label, "review", {"signoff_id": row.id, "created": row.created.isoformat()})

    async def decide(request: Request) -> Response:
        label = checked_label(request)
        if label is None:
            return refuse(ctx, request, 404, "not a session label")
        form = dict(await request.form())
        number = request.path_params["number"]
        row = await run(request, save_decision, label, number, current_user(request), form, client_address(request))
        if isinstance(row, Response):
            return row
        assert isinstance(row, SeriesDecisionRow)
        return back(request, label, f"series-{quote(number, safe='')}", {"decision_id": row.id,
                                                                         "decision": row.decision})

    return [Route("/session/{label}/rate", rate, methods=["POST"], name="rate"),
            Route("/session/{label}/signoff", signoff, methods=["POST"], name="signoff"),
            Route("/session/{label}/series/{number}/decision", decide, methods=["POST"], name="decision")]
