"""The pictures to rate as the review app shows them: the file a registered picture
(RatingImageRow) names, only when the picture route would serve it (pictures.py), its URL and
its size in pixels (the space clicks are recorded in)."""

from __future__ import annotations

import struct
from pathlib import Path, PurePath

from datman_flow.review.pictures import picture_file
from datman_flow.review.urls import picture_url
from datman_flow.store.review_rows import RatingImageRow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None when it is not a readable PNG."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return (width, height) if width > 0 and height > 0 else None


def image_file(data_dir: Path, label: str, image: RatingImageRow) -> Path | None:
    """The picture's file, when it is one the picture route serves for `label`."""
    name = PurePath(str(image.img or "")).name
    return picture_file(data_dir, label, name) if name else None


def image_url(label: str, path: Path) -> str:
    """`/pictures/<label>/<name>`, percent-encoded (relative to this app)."""
    return picture_url("", label, path.name)


def image_size(image: RatingImageRow, path: Path | None) -> tuple[int, int] | None:
    """The size registered with the picture, else read from its file."""
    if image.width and image.height and image.width > 0 and image.height > 0:
        return int(image.width), int(image.height)
    return png_size(path) if path is not None else None
