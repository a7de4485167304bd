"""MRIQC's Web-API, as far as a report's rating widget speaks it: `POST /api/v1/rating` (and
`POST /api/v1`, where nireports' widget posts), matched to a series by the NIfTI's md5sum.
(Placeholder: the routes are being written.)"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute


def mriqc_routes(data_dir: Path) -> list[BaseRoute]:
    """The Web-API routes the review app serves (token-authenticated, no cookie, no CSRF form)."""
    return []
