"""The review app: a Starlette application over the data folder."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from datman_flow.review.pictures import picture_file
from datman_flow.review.urls import PICTURES_PREFIX

# pictures are redrawn when a session is run again (same name): browsers keep them 5 minutes
CACHE_CONTROL = "private, max-age=300"


def create_app(data_dir: Path) -> Starlette:
    """`GET /pictures/{session}/{file}`: a session's QC picture from <data>/nii, else 404."""
    data_dir = Path(data_dir).resolve()

    async def picture(request: Request) -> Response:
        path = picture_file(data_dir, request.path_params["session"], request.path_params["file"])
        if path is None:
            return PlainTextResponse("no such picture", status_code=404)
        return FileResponse(path, media_type="image/png",
                            headers={"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"})

    return Starlette(routes=[Route(PICTURES_PREFIX + "/{session}/{file}", picture, methods=["GET", "HEAD"])])
