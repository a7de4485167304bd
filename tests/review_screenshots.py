"""The README's pictures of the review app: the sample sessions ingested (as tests/screenshots.py
does it), their pictures to rate drawn, then the real app photographed in headless Chromium as
a reviewer uses it: a measured session's page with one picture rated FAIL with two clicks
marked on it (docs/images/review_session.png: the series from its heading to its pictures to
rate), then the queue (review_queue.png).

    .venv/bin/python tests/review_screenshots.py docs/images

Needs Debian's chromium (`make system-packages`) and the dev extra (Playwright)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import dagster as dg
from PIL import Image

from datman_flow.layout import DataLayout
from datman_flow.pipeline.review_images import ensure_review_images
from datman_flow.review.accounts import Accounts
from datman_flow.review.server import ReviewServer
from datman_flow.samples import write_sample_sessions
from datman_flow.store import SessionRow
from datman_flow.store.table_cache import TableCache
from datman_flow.xnat.emulator import XnatEmulator

sys.path.insert(0, str(Path(__file__).parent))
from screenshots import CONFIGS, ingest_samples  # noqa: E402

from ui_helpers import chromium_page  # noqa: E402

REVIEWER, PASSWORD = "demo", "demo-review"
SESSION = "SPN01_CMH_0001_01_01"  # the complete session: T1, resting state, DTI
CLICKS = ((0.34, 0.40), (0.62, 0.58))  # the two marks, as fractions of the displayed picture
NOTE = "ringing over the frontal lobe"


def ingest(root: Path) -> Path:
    """Every sample session ingested into `root`/data (XNAT emulator, a test Dagster instance), the
    pictures to rate of each measured session drawn, a reviewer made; the data folder."""
    write_sample_sessions(root / "xnat")
    (root / "dagster_home").mkdir(exist_ok=True)
    data = root / "data"
    with XnatEmulator(root / "xnat", port=0, user="u", password="p") as xnat, \
            dg.instance_for_test(temp_dir=str(root / "dagster_home"), set_dagster_home=False) as instance:
        env = {"DATMAN_XNAT_URL": xnat.url, "XNAT_USER": "u", "XNAT_PASS": "p", "DATMAN_SETTLE_MINUTES": "0",
               "DATMAN_CONFIG_DIR": str(CONFIGS), "DATMAN_DATA_DIR": str(data)}
        ingest_samples(root, instance, env)
    layout = DataLayout(data)
    for session in TableCache(layout.metric_store.parquet_dir, SessionRow).rows():
        if session.status == "ingested":  # the QC step drew them already: this only checks
            ensure_review_images(layout, session.session)
    accounts = Accounts(data)
    if not accounts.exists(REVIEWER):
        accounts.add(REVIEWER, PASSWORD)
    return data


def quantized(path: Path) -> Path:
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)  # a third of the size
    return path


def photograph(url: str, out: Path) -> list[Path]:
    shots = []
    with chromium_page(1400, 900) as page:
        page.goto(url + "/")
        page.get_by_label("Name").fill(REVIEWER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(url + "/")

        page.goto(f"{url}/session/{SESSION}")
        first = page.locator("section.picture").first
        first.locator("textarea[name=notes]").fill(NOTE)
        img = first.locator(".frame img")
        img.scroll_into_view_if_needed()
        page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())  # clicks count once drawn
        box = img.bounding_box()
        assert box, "the first picture to rate is not shown"
        for fx, fy in CLICKS:
            page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        page.keyboard.press("f")
        first.locator(".status-line").filter(has_text="saved: FAIL").wait_for()
        # the saved rating as the page shows it after a reload, with its marks: the series from
        # its heading to its pictures to rate
        page.reload()
        page.locator("#series-2 .marker").first.wait_for()
        page.mouse.move(5, 5)
        top, bottom = page.evaluate("""() => {
            const edge = (selector) => document.querySelector(selector).getBoundingClientRect();
            return [edge("#series-2 h3").top + window.scrollY, edge("#series-2 .pictures").bottom + window.scrollY];
        }""")
        path = out / "review_session.png"
        page.screenshot(path=str(path), full_page=True,
                        clip={"x": 0, "y": top - 12, "width": page.viewport_size["width"], "height": bottom - top + 24})
        shots.append(quantized(path))

        page.goto(url + "/")  # the queue, the session rated FAIL among those waiting
        page.mouse.move(5, 5)
        path = out / "review_queue.png"
        bottom = page.evaluate("document.querySelector('#queue').getBoundingClientRect().bottom")
        page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": page.viewport_size["width"], "height": bottom + 16})
        shots.append(quantized(path))
    return shots


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = ingest(Path(tmp))
        with ReviewServer(data) as review:
            review.wait_warm(120)
            for path in photograph(review.url, out):
                print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")))
