"""The export of reviewers' ratings as the A2CPS derivative-QC kit's four Parquet tables, with
each rated picture's PNG bytes embedded (store/ratings_export.py writes the tables).

A picture's path comes from the store (`rating_images.img`, relative to the data folder), so it
is treated as outside input: an absolute path, a `..`, a path that resolves outside the data
folder (a symlink out), something that is not a regular file, or a file that is not a PNG is
refused and never read; a file that is not there is missing. Either way the image row is
exported with `img` NULL and the export says which and why.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from datman_flow.store.metric_store import MetricStore
from datman_flow.store.ratings_export import KitTables, write_kit_tables

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PICTURE_BYTES = 50 * 1024 * 1024  # a QC picture is a few hundred KB; anything this big is not one


class PictureRefused(ValueError):
    """A picture path that must not be read; the message says why."""


@dataclass(frozen=True)
class PictureProblem:
    image_id: int
    img: str
    kind: str  # missing | refused
    reason: str


def picture_path(data_dir: Path, img: str) -> Path:
    """The real path of picture `img` (relative to the data folder), after the checks; raises
    PictureRefused for anything that could leave the data folder."""
    if not img:
        raise FileNotFoundError("no picture recorded")
    if "\x00" in img:
        raise PictureRefused("a NUL character in the path")
    relative = PurePosixPath(img)
    if relative.is_absolute() or Path(img).is_absolute():
        raise PictureRefused("an absolute path (pictures are recorded relative to the data folder)")
    if ".." in relative.parts:
        raise PictureRefused("'..' in the path")
    root = Path(os.path.realpath(data_dir))
    real = Path(os.path.realpath(root / relative))
    if real == root or not real.is_relative_to(root):
        raise PictureRefused(f"it resolves outside the data folder ({real})")
    return real


def read_png(path: Path) -> bytes:
    """The bytes of the regular file `path` (not followed if it became a symlink since it was
    checked), if they are a PNG of a sane size; PictureRefused otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise PictureRefused(f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PictureRefused("not a regular file")
        if info.st_size > MAX_PICTURE_BYTES:
            raise PictureRefused(f"{info.st_size} bytes, more than a QC picture's {MAX_PICTURE_BYTES}")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_PICTURE_BYTES + 1)
    finally:
        os.close(fd)
    if not data.startswith(PNG_SIGNATURE):
        raise PictureRefused("not a PNG")
    return data


@dataclass
class PictureReader:
    """`reader(image_id, img)`: the picture's bytes or None, each problem noted in `problems`."""

    data_dir: Path
    problems: list[PictureProblem] = field(default_factory=list)

    def __call__(self, image_id: int, img: str) -> bytes | None:
        try:
            return read_png(picture_path(self.data_dir, img))
        except PictureRefused as exc:
            self.problems.append(PictureProblem(image_id, img, "refused", str(exc)))
        except FileNotFoundError:
            reason = "no such file" if img else "no picture recorded"
            self.problems.append(PictureProblem(image_id, img, "missing", reason))
        return None


@dataclass(frozen=True)
class RatingsExport:
    tables: KitTables
    problems: tuple[PictureProblem, ...]  # images exported with img NULL


def export_ratings(data_dir: Path, out_dir: Path, study: str | None = None) -> RatingsExport:
    """Write the kit's session/image/rating/coordinate.parquet into `out_dir` from the data
    folder's metric store (only `study`'s scanning sessions if given)."""
    data_dir = Path(data_dir)
    reader = PictureReader(data_dir)
    tables = write_kit_tables(MetricStore.under(data_dir).parquet_dir, Path(out_dir), reader, study)
    return RatingsExport(tables, tuple(reader.problems))
