"""Small copies of the QC pictures, to be shown inline (as `data:` URIs in markdown metadata),
under one byte budget for all the pictures of a session.

A QC picture is a 1300-1500 px wide matplotlib PNG of 80-350 KB; the Dagster UI keeps every
materialization's metadata in its event storage, so the inline copies of a whole session must
stay small (`INLINE_BUDGET`). Every picture is scaled down and stored as a palette PNG, all at
the same step of `LADDER` (narrower, fewer colours at each step): the first step at which the
whole set fits the budget; when even the last step does not fit, the largest copies are left
out, with the reason. The budget is never exceeded.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

INLINE_BUDGET = 150_000  # bytes of data URIs for all the inline pictures of one materialization
MAX_PIXELS = 40_000_000  # a QC picture is ~1.5 megapixels; refuse to decode anything absurd
URI_PREFIX = "data:image/png;base64,"


@dataclass(frozen=True)
class Step:
    """One size of thumbnail: `width` pixels wide (never wider than the picture), `colours` at most."""

    width: int
    colours: int


LADDER: tuple[Step, ...] = (Step(480, 256), Step(440, 192), Step(400, 128), Step(360, 96), Step(320, 64),
                            Step(280, 48), Step(240, 32), Step(200, 24), Step(160, 16))


class PictureError(ValueError):
    """A picture that cannot be read as a PNG image (the message names the file and why)."""


@dataclass(frozen=True)
class InlinePicture:
    path: Path
    uri: str  # data:image/png;base64,...
    step: Step

    @property
    def size(self) -> int:
        return len(self.uri)


@dataclass(frozen=True)
class InlineSet:
    """What `inline_pictures` made: the copies shown inline, and why the others are not."""

    shown: dict[Path, InlinePicture]
    left_out: dict[Path, str]  # picture -> the reason it is not shown inline
    budget: int

    @property
    def total(self) -> int:
        return sum(p.size for p in self.shown.values())


def load_picture(png: Path) -> Image.Image:
    """The picture as RGB (transparency flattened on white); PictureError when it is not a readable PNG."""
    unreadable = (OSError, ValueError, Image.DecompressionBombError)
    try:
        image = Image.open(png)
    except unreadable as exc:
        raise PictureError(f"{png}: cannot be read as an image ({type(exc).__name__}: {exc})") from None
    with image:
        if image.format != "PNG":
            raise PictureError(f"{png}: not a PNG image (found {image.format})")
        if image.width * image.height > MAX_PIXELS:
            raise PictureError(f"{png}: {image.width} x {image.height} pixels, more than a QC picture can be")
        try:
            rgba = image.convert("RGBA")  # decodes the pixels
        except unreadable as exc:
            raise PictureError(f"{png}: damaged PNG ({type(exc).__name__}: {exc})") from None
    if rgba.getextrema()[3][0] == 255:  # opaque (matplotlib's usual): no flattening needed
        return rgba.convert("RGB")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")


def scaled(image: Image.Image, width: int) -> Image.Image:
    """`image` scaled to `width` pixels wide (aspect kept); never enlarged."""
    if image.width <= width:
        return image
    height = max(1, round(image.height * width / image.width))
    return image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode(image: Image.Image, colours: int) -> bytes:
    """An optimized palette ('P') PNG of at most `colours` colours, without dithering (text stays sharp)."""
    palette = image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def thumbnail(png: Path, width: int = LADDER[0].width, colours: int = LADDER[0].colours) -> bytes:
    """A small PNG of the picture `png`: `width` pixels wide at most, `colours` colours at most."""
    return encode(scaled(load_picture(png), width), colours)


def data_uri(png_bytes: bytes) -> str:
    return URI_PREFIX + base64.b64encode(png_bytes).decode("ascii")


def inline_pictures(pngs: Sequence[Path], budget: int = INLINE_BUDGET,
                    ladder: Sequence[Step] = LADDER) -> InlineSet:
    """Thumbnails of `pngs`, all at the same step, as data URIs whose lengths add up to at most
    `budget` bytes: the first step of `ladder` at which they fit; when even the last step is
    too large, the largest copies are left out until the rest fits. Unreadable pictures are
    left out with their error."""
    left_out: dict[Path, str] = {}
    sources: dict[Path, Image.Image] = {}
    for png in dict.fromkeys(Path(p) for p in pngs):
        try:  # scaled once to the widest step: the smaller steps are drawn from that copy
            sources[png] = scaled(load_picture(png), max(step.width for step in ladder))
        except PictureError as exc:
            left_out[png] = f"not shown: {exc}"

    def at(index: int) -> dict[Path, InlinePicture]:
        step = ladder[index]
        return {png: InlinePicture(png, data_uri(encode(scaled(image, step.width), step.colours)), step)
                for png, image in sources.items()}

    def fits(shown: dict[Path, InlinePicture]) -> bool:
        return sum(p.size for p in shown.values()) <= budget

    shown = at(0)
    if not fits(shown):  # the sizes fall along the ladder: look for the first step that fits
        low, high, smallest = 1, len(ladder) - 1, None
        shown = {}
        while low <= high:
            middle = (low + high) // 2
            candidate = at(middle)
            smallest = candidate if middle == len(ladder) - 1 else smallest
            if fits(candidate):
                shown, high = candidate, middle - 1
            else:
                low = middle + 1
        if not shown and smallest is not None:
            shown, last = smallest, ladder[-1]
            while not fits(shown):
                largest = max(shown, key=lambda png: shown[png].size)
                left_out[largest] = (f"left out: even at {last.width} px and {last.colours} colours the "
                                     f"session's pictures would pass the {budget // 1000} KB budget for inline "
                                     f"pictures")
                del shown[largest]
    return InlineSet(shown, left_out, budget)
