"""Thumbnails of the real QC pictures (anat, fmri, dwi) as data URIs: small palette PNGs, and
the set of a session never over its byte budget however many pictures it has."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from datman_flow.qc.thumbnail import (
    INLINE_BUDGET,
    LADDER,
    URI_PREFIX,
    PictureError,
    inline_pictures,
    load_picture,
    thumbnail,
)


@pytest.fixture(scope="module")
def pictures(qc_session) -> list[Path]:
    return [Path(q.picture_path) for q in qc_session[1]]


def decoded(uri: str) -> Image.Image:
    assert uri.startswith(URI_PREFIX)
    image = Image.open(io.BytesIO(base64.b64decode(uri[len(URI_PREFIX):], validate=True)))
    image.load()
    return image


def test_a_thumbnail_is_a_small_palette_png_of_the_picture(pictures):
    for png in pictures:
        full = Image.open(png)
        small = thumbnail(png)
        image = Image.open(io.BytesIO(small))
        assert image.format == "PNG" and image.mode == "P" and len(image.getpalette()) // 3 <= 256
        assert image.width == 480 and abs(image.height / image.width - full.height / full.width) < 0.01
        assert len(small) < png.stat().st_size / 2, (png.name, len(small), png.stat().st_size)
        tiny = thumbnail(png, width=160, colours=16)
        assert Image.open(io.BytesIO(tiny)).width == 160 and len(tiny) < len(small) / 3


def test_a_thumbnail_is_never_larger_than_the_picture(tmp_path, pictures):
    narrow = tmp_path / "narrow.png"
    Image.open(pictures[0]).resize((120, 90)).save(narrow)
    assert Image.open(io.BytesIO(thumbnail(narrow))).size == (120, 90)


def test_a_session_s_pictures_fit_the_budget_at_the_first_step_that_fits(pictures):
    inline = inline_pictures(pictures)
    assert list(inline.shown) == pictures and not inline.left_out  # in the given order
    assert inline.total <= INLINE_BUDGET and inline.total == sum(len(p.uri) for p in inline.shown.values())
    (step,) = {p.step for p in inline.shown.values()}  # all at the same size
    index = LADDER.index(step)
    assert index <= 1  # three pictures: 440 px or more
    if index:  # the step before would not have fitted
        assert inline_pictures(pictures, budget=10**9, ladder=[LADDER[index - 1]]).total > INLINE_BUDGET
    for picture in inline.shown.values():
        assert decoded(picture.uri).width == step.width


def test_many_pictures_shrink_together_and_never_pass_the_budget(pictures, tmp_path):
    copies = [Path(shutil.copy(pictures[n % 3], tmp_path / f"s{n:02d}_qc.png")) for n in range(12)]
    default = inline_pictures(copies)  # a long session: 12 pictures fit, smaller
    assert not default.left_out and default.total <= INLINE_BUDGET
    assert len({p.step for p in default.shown.values()}) == 1
    assert LADDER[0].width > default.shown[copies[0]].step.width > LADDER[-1].width
    tight = inline_pictures(copies, budget=40_000)  # too many even at the smallest step
    assert 0 < len(tight.shown) < 12 and tight.total <= 40_000
    assert {p.step for p in tight.shown.values()} == {LADDER[-1]}
    assert set(tight.shown) | set(tight.left_out) == set(copies)
    assert all("160 px and 16 colours" in reason and "40 KB budget" in reason for reason in tight.left_out.values())


def test_over_a_tiny_budget_pictures_are_left_out_with_the_reason(pictures):
    smallest = inline_pictures(pictures, budget=10**9, ladder=(LADDER[-1],)).total  # all three at the last step
    budget = smallest - 1000
    inline = inline_pictures(pictures, budget=budget)
    assert inline.total <= budget and len(inline.shown) < 3 and inline.left_out
    assert all("left out" in r and f"{budget // 1000} KB budget" in r for r in inline.left_out.values())
    nothing = inline_pictures(pictures, budget=0)
    assert nothing.shown == {} and set(nothing.left_out) == set(pictures) and nothing.total == 0


def test_unreadable_pictures_are_left_out_and_the_others_shown(pictures, tmp_path):
    text = tmp_path / "notes_qc.png"
    text.write_text("not an image")
    truncated = tmp_path / "cut_qc.png"
    truncated.write_bytes(pictures[0].read_bytes()[:5000])
    jpeg = tmp_path / "photo_qc.png"
    Image.open(pictures[0]).convert("RGB").save(jpeg, format="JPEG")
    missing = tmp_path / "gone_qc.png"
    inline = inline_pictures([text, pictures[1], truncated, jpeg, missing])
    assert list(inline.shown) == [pictures[1]]
    assert "cannot be read as an image" in inline.left_out[text]
    assert "damaged PNG" in inline.left_out[truncated]
    assert "not a PNG image (found JPEG)" in inline.left_out[jpeg]
    assert str(missing) in inline.left_out[missing]
    with pytest.raises(PictureError, match="notes_qc.png"):
        load_picture(text)


def test_transparency_is_flattened_on_white(tmp_path):
    clear = tmp_path / "clear_qc.png"
    Image.new("RGBA", (600, 300), (255, 0, 0, 0)).save(clear)
    assert load_picture(clear).getpixel((10, 10)) == (255, 255, 255)
    assert decoded(inline_pictures([clear]).shown[clear].uri).convert("RGB").getpixel((10, 10)) == (255, 255, 255)
