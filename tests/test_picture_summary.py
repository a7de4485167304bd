"""The qc_metrics metadata's `pictures` markdown: each series' real QC picture inline as a data
URI, linked to its full size on the review app (or with its server path), within the budget;
and the same through a real Dagster run, its link fetched from a running review app."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import pytest

from datman_flow.defs.resources import DatmanSettings
from datman_flow.pipeline.picture_summary import pictures_markdown
from datman_flow.pipeline.summary import Markdown, qc_metadata
from datman_flow.qc.thumbnail import INLINE_BUDGET
from datman_flow.review.server import ReviewServer
from datman_flow.xnat.emulator import XnatEmulator

from pipeline_helpers import CONFIGS, PHANTOM, copy_session, sample_template
from review_helpers import Browser, add_reviewer

BASE = "http://127.0.0.1:3001"
IMAGE = re.compile(r"!\[([^\]]*)\]\((data:image/png;base64,[A-Za-z0-9+/=]+)\)")
LINKED = re.compile(r"\[!\[[^\]]*\]\(data:image/png;base64,[A-Za-z0-9+/=]+\)\]\((http[^)\s]+)\)")


def test_each_picture_is_inline_and_linked_to_its_full_size(qc_session):
    _, measured = qc_session
    metadata = qc_metadata(measured, BASE)
    text = metadata["pictures"]
    assert isinstance(text, Markdown)
    for q in measured:  # the server paths stay, for operators on the server
        assert metadata[f"picture_{q.series.series_number}_{q.series.tag}"] == Path(q.picture_path)
    for heading in ("**series 2 T1 (anat)**", "**series 3 RST (fmri)**", "**series 4 DTI60 (dwi)**"):
        assert heading in text
    images = IMAGE.findall(text)
    assert [alt for alt, _ in images] == ["QC picture of series 2 T1", "QC picture of series 3 RST",
                                          "QC picture of series 4 DTI60"]
    assert sum(len(uri) for _, uri in images) <= INLINE_BUDGET
    for _, uri in images:
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert LINKED.findall(text) == [f"{BASE}/pictures/{q.series.session}/{Path(q.picture_path).name}"
                                    for q in measured]
    assert "3 of 3 pictures inline" in text and "click a picture for its full size" in text


def test_without_a_url_the_server_path_is_given_instead_of_a_link(qc_session):
    _, measured = qc_session
    text = qc_metadata(measured)["pictures"]
    assert len(IMAGE.findall(text)) == 3 and not LINKED.findall(text) and "](http" not in text
    for q in measured:
        assert f"on the server: `{q.picture_path}`" in text


def test_pictures_over_the_budget_are_named_with_their_link(qc_session):
    _, measured = qc_session
    budget = 8_000  # less than the three pictures take even at the smallest size
    text = pictures_markdown(measured, BASE, budget=budget)
    assert sum(len(uri) for _, uri in IMAGE.findall(text)) <= budget
    left_out = re.findall(r"_left out: even at 160 px and 16 colours[^_]*_ \(\[full size\]\((http[^)]+)\)\)", text)
    assert left_out and len(left_out) + len(IMAGE.findall(text)) == 3
    assert f"{len(IMAGE.findall(text))} of 3 pictures inline" in text
    without_url = pictures_markdown(measured, "", budget=0)
    assert not IMAGE.findall(without_url) and without_url.count("(on the server: `") == 3


def test_series_text_is_escaped_and_a_session_without_pictures_has_none(qc_session):
    _, measured = qc_session
    odd = replace(measured[0], series=replace(measured[0].series, series_number="4_2*[x]"))
    text = pictures_markdown([odd])
    assert r"**series 4\_2\*\[x\] T1 (anat)**" in text and r"QC picture of series 4\_2\*\[x\] T1" in text
    assert text.count("](data:image/png;base64,") == 1
    unpictured = [replace(q, picture_path="") for q in measured]
    assert "pictures" not in qc_metadata(unpictured) and pictures_markdown(unpictured) == ""


def test_the_url_comes_from_the_resource_or_the_environment(monkeypatch):
    monkeypatch.delenv("DATMAN_PICTURES_URL", raising=False)
    assert DatmanSettings().pictures_base_url() == ""
    monkeypatch.setenv("DATMAN_PICTURES_URL", "http://qc.lab:3001/")
    assert DatmanSettings().pictures_base_url() == "http://qc.lab:3001"
    assert DatmanSettings(pictures_url="https://review.lab").pictures_base_url() == "https://review.lab"
    monkeypatch.setenv("DATMAN_PICTURES_URL", "javascript:alert(1)")
    with pytest.raises(dg.Failure, match="DATMAN_PICTURES_URL"):
        DatmanSettings().pictures_base_url()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return sample_template(tmp_path_factory.mktemp("samples"), [PHANTOM])


def test_a_dagster_run_shows_the_picture_linked_to_the_review_app(template, tmp_path, monkeypatch):
    """The phantom session through every asset: qc_metrics' materialization carries the inline
    picture and a link that the review app, serving the run's data folder, answers."""
    from datman_flow.defs.runner import run_session

    copy_session(template, tmp_path / "xnat", "SPINS_CMH", PHANTOM)
    data = tmp_path / "data"
    data.mkdir()
    with ReviewServer(data) as review, XnatEmulator(tmp_path / "xnat", port=0, user="u", password="p") as xnat:
        for name, value in (("DATMAN_XNAT_URL", xnat.url), ("XNAT_USER", "u"), ("XNAT_PASS", "p"),
                            ("DATMAN_PICTURES_URL", review.url)):
            monkeypatch.setenv(name, value)
        with dg.DagsterInstance.ephemeral() as instance:
            run = run_session(instance, PHANTOM, CONFIGS, data)
            assert run.success, run.error
            event = instance.get_latest_materialization_event(dg.AssetKey("qc_metrics"))
        metadata = event.asset_materialization.metadata
        text = metadata["pictures"].value
        assert isinstance(metadata["pictures"], dg.MarkdownMetadataValue)
        (link,) = LINKED.findall(text)
        assert link.startswith(f"{review.url}/pictures/{PHANTOM}/") and link.endswith("_qc.png")
        add_reviewer(data, "alice")  # the review app serves pictures to reviewers who logged in
        browser = Browser(review.host, review.port)
        assert browser.get(urlsplit(link).path).status == 303  # to the login page first
        assert browser.login("alice", next_path=urlsplit(link).path).headers["location"] == urlsplit(link).path
        response = browser.get(urlsplit(link).path)
        assert response.status == 200 and response.headers["content-type"] == "image/png"
        assert response.body == Path(str(next(v.value for k, v in metadata.items()
                                              if k.startswith("picture_")))).read_bytes()
