"""The review app in a real browser (Debian's Chromium driven by Playwright), as a reviewer uses
it: log in, the queue, "Review next", two clicks and the FAIL key on a real measured series'
picture, the PASS key on the next one, a blacklisted series, a sign-off; then the rows in the
store (clicks in the PNG's own pixels), the A2CPS export read back with DuckDB, the review
state, and a page that logged no error (a CSP violation, a script error) on the way."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from datman_flow.cli import main
from datman_flow.layout import DataLayout
from datman_flow.pipeline.persist import series_row
from datman_flow.pipeline.qc import metric_rows, series_rows
from datman_flow.pipeline.review_images import ensure_review_images
from datman_flow.pipeline.review_state import read_review
from datman_flow.review.scales import Rating, Step
from datman_flow.review.server import ReviewServer
from datman_flow.store import QcMetricRow, QcSeriesRow, SeriesRow, SessionRow
from datman_flow.store.review_rows import (
    RatingCoordinateRow,
    RatingImageRow,
    RatingRow,
    RatingSessionRow,
    SeriesDecisionRow,
    SignOffRow,
)

from review_helpers import PASSWORD, add_reviewer, record_session
from ui_helpers import browser_missing, chromium_page

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(browser_missing()), reason=browser_missing() or "-")]

QC_LABEL = "SPN01_CMH_0001_01_01"  # conftest's qc_session: the newest scan, so "Review next" opens it
OTHERS = (("SPN01_CMH_0002_01_01", "2024-05-01"), ("SPN01_CMH_0003_01_01", "2024-04-01"),
          ("SPN01_ZHH_0004_01_01", "2024-03-01"))
NOTE = "ghosting across the frontal lobe"
BLACKLIST_REASON = "severe motion throughout"
SIGNOFF_COMMENT = "looked at every picture"
CLICKS = ((0.25, 0.30), (0.70, 0.55))  # where the two clicks land, as fractions of the displayed picture
MISTAKE = (0.50, 0.80)  # a third click, removed by clicking its mark
TOLERANCE = 1.5  # pixels of the PNG


def measured_data(qc_session, dest: Path) -> Path:
    """A copy of the measured session's data folder with its rows as an ingest leaves them
    (session, series, qc_series, metrics) and its pictures to rate drawn and registered; three
    more recorded sessions; reviewer alice."""
    source, measured = qc_session
    data = dest / "data"
    shutil.copytree(source, data, symlinks=True)

    def moved(path: str) -> str:
        return str(data / Path(path).relative_to(source)) if path else path

    measured = [replace(q, series=q.series.with_changes(nifti_path=moved(str(q.series.nifti_path))),
                        json_path=moved(q.json_path), picture_path=moved(q.picture_path)) for q in measured]
    layout = DataLayout(data)
    store = layout.metric_store
    store.replace(SessionRow, QC_LABEL, [SessionRow(
        session=QC_LABEL, study="SPN01", site="CMH", subject="0001", timepoint="01", repeat="01",
        xnat_project="SPN01_CMH", xnat_id="XNAT_E00001", insert_date="2024-06-03 10:00:00", scan_date="2024-06-03",
        ingested_at=datetime.now(), status="ingested", health="ok")])
    store.replace(SeriesRow, QC_LABEL, [series_row(q.series) for q in measured])
    store.replace(QcSeriesRow, QC_LABEL, series_rows(QC_LABEL, measured))
    store.replace(QcMetricRow, QC_LABEL, metric_rows(QC_LABEL, measured))
    images = ensure_review_images(layout, QC_LABEL)
    assert len(images) == 9 and all(i.width and i.height for i in images), images
    for label, scan_date in OTHERS:
        record_session(data, label, scan_date)
    add_reviewer(data, "alice")
    return data


@pytest.fixture(scope="module")
def served(qc_session, tmp_path_factory):
    data = measured_data(qc_session, tmp_path_factory.mktemp("review_browser"))
    with ReviewServer(data) as server:
        assert server.wait_warm(60)
        yield server, data


def rows(data: Path, row_type: type, label: str = QC_LABEL) -> list:
    return DataLayout(data).metric_store.read(row_type, label)


def test_a_reviewer_rates_decides_and_signs_off_in_the_browser(served, tmp_path):
    server, data = served
    problems: list[str] = []
    with chromium_page(1400, 1000) as page:
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

        # log in as a person does: the queue sends to the login page, which comes back to the queue
        page.goto(server.url + "/")
        assert "/login" in page.url
        page.get_by_label("Name").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(server.url + "/")
        queue = page.locator("#queue")
        for label in (QC_LABEL, *(label for label, _ in OTHERS)):
            assert queue.get_by_role("link", name=label).is_visible(), label
        page.locator("header.top").get_by_role("link", name="Review next").click()
        page.wait_for_url(f"{server.url}/session/{QC_LABEL}")

        # the first picture to rate: a note, two clicks on the picture, then the FAIL key
        pictures = page.locator("section.picture")
        first, second = pictures.nth(0), pictures.nth(1)
        tops = [pictures.nth(i).bounding_box()["y"] for i in range(3)]  # a series' three pictures in one row
        assert max(tops) - min(tops) < 1, tops
        first.locator("textarea[name=notes]").fill(NOTE)
        img = first.locator(".frame img")
        img.scroll_into_view_if_needed()
        img.element_handle().wait_for_element_state("stable")
        page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())
        natural = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        box = img.bounding_box()
        assert box and box["width"] > 300, f"the picture to rate is shown {box} (natural {natural})"
        expected = []
        for fx, fy in (*CLICKS, MISTAKE):
            x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
            page.mouse.click(x, y)
            expected.append(((x - box["x"]) * natural[0] / box["width"], (y - box["y"]) * natural[1] / box["height"]))
        assert first.locator(".marker").count() == 3 and first.locator(".clicks").inner_text() == "3 click(s)"
        mark = first.locator(".marker").nth(2).bounding_box()  # a mark clicked by mistake, clicked to remove it
        assert mark and abs(mark["x"] + mark["width"] / 2 - box["x"] - MISTAKE[0] * box["width"]) < 1.5
        page.mouse.click(mark["x"] + mark["width"] / 2, mark["y"] + mark["height"] / 2)
        expected.pop()
        assert first.locator(".marker").count() == 2 and first.locator(".clicks").inner_text() == "2 click(s)"
        # the picture keeps the focus (the removed mark had it), so its keys still work
        assert page.evaluate("document.activeElement.id") == first.get_attribute("id")
        page.keyboard.press("3")
        first.locator(".status-line").filter(has_text="saved: FAIL with 2 click(s)").wait_for()

        # the focus moved on to the next picture: PASS with its key, no click
        page.wait_for_function("id => document.activeElement && document.activeElement.id === id",
                               arg=second.get_attribute("id"))
        page.keyboard.press("p")
        second.locator(".status-line").filter(has_text="saved: PASS with 0 click(s)").wait_for()

        # blacklist the RST series, with a reason (a plain form: the page comes back at the series)
        series = page.locator("#series-3")
        series.get_by_label("decision").select_option("blacklisted")
        series.locator("input[name=reason]").fill(BLACKLIST_REASON)
        series.get_by_role("button", name="Record decision").click()
        page.wait_for_url(f"{server.url}/session/{QC_LABEL}#series-3")
        assert "blacklisted" in page.locator("#series-3").inner_text()

        # sign the session off with a comment
        page.locator("input[name=comment]").fill(SIGNOFF_COMMENT)
        page.get_by_role("button", name="Sign off this session").click()
        page.wait_for_url(f"{server.url}/session/{QC_LABEL}#review")
        facts = page.locator("dl.facts").inner_text()
        assert SIGNOFF_COMMENT in facts and "failed" in facts
        first_id, second_id = (int(s.get_attribute("data-img")) for s in (first, second))
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(server.url + "/login")
    assert problems == [], problems

    # the store holds exactly what the reviewer did, by alice
    images = {i.id: i for i in rows(data, RatingImageRow)}
    ratings = sorted(rows(data, RatingRow), key=lambda r: r.id)
    assert [(r.img_id, r.rating, r.notes, r.user) for r in ratings] == [
        (first_id, Rating.FAIL, NOTE, "alice"), (second_id, Rating.PASS, "", "alice")]
    fail, passed = ratings
    assert (images[fail.img_id].series_number, images[fail.img_id].step) == ("2", Step.RAW_T1W)
    [sitting] = rows(data, RatingSessionRow)
    assert (sitting.user, sitting.step) == ("alice", Step.RAW_T1W) and {r.session for r in ratings} == {sitting.id}
    clicks = rows(data, RatingCoordinateRow)
    fail_clicks = sorted((c for c in clicks if c.img_id == fail.img_id), key=lambda c: c.id)
    assert len(clicks) == 3 and len(fail_clicks) == 2
    for click, (x, y) in zip(fail_clicks, expected):
        assert abs(click.x - x) <= TOLERANCE and abs(click.y - y) <= TOLERANCE, (click, expected)
        assert (click.session, click.user, click.created) == (sitting.id, "alice", fail.created)
    assert [(c.x, c.y, c.session) for c in clicks if c.img_id == passed.img_id] == [(None, None, sitting.id)]
    [decision] = rows(data, SeriesDecisionRow)
    assert (decision.series_number, decision.tag, decision.decision, decision.reason, decision.user) == \
        ("3", "RST", "blacklisted", BLACKLIST_REASON, "alice")
    [signoff] = rows(data, SignOffRow)
    assert (signoff.user, signoff.comment) == ("alice", SIGNOFF_COMMENT)
    for label, _ in OTHERS:
        assert not any(rows(data, t, label) for t in (RatingRow, RatingCoordinateRow, SeriesDecisionRow, SignOffRow))
    review = read_review(DataLayout(data), QC_LABEL)
    assert review.state == "failed" and review.blacklisted == ("3",) and review.signoff == signoff, review
    assert any("blacklisted" in f.text and BLACKLIST_REASON in f.text for f in review.findings), review.findings

    # the A2CPS export: the FAIL with its picture, its two clicks and its sitting's step
    out = tmp_path / "kit"
    assert main(["ratings", "export", str(out), "--data-dir", str(data)]) == 0
    with duckdb.connect() as con:
        def one(sql: str, *params):
            return con.execute(sql.replace("{dir}", str(out)), list(params)).fetchall()

        assert one("SELECT id, img_id, session, notes FROM '{dir}/rating.parquet' WHERE rating = 2") == [
            (fail.id, fail.img_id, sitting.id, NOTE)]
        xy = one("SELECT x, y FROM '{dir}/coordinate.parquet' WHERE img_id = ? ORDER BY id", fail.img_id)
        assert [(round(x, 1), round(y, 1)) for x, y in xy] == [(c.x, c.y) for c in fail_clicks]
        assert one("SELECT step, \"user\" FROM '{dir}/session.parquet' WHERE id = ?", sitting.id) == [
            (Step.RAW_T1W, "alice")]
        [(png,)] = one("SELECT img FROM '{dir}/image.parquet' WHERE id = ?", fail.img_id)
        assert png == (data / images[fail.img_id].img).read_bytes() and png[:8] == b"\x89PNG\r\n\x1a\n"
