"""Pulling a session when XNAT answers its listings incomplete or garbled: asked again, not failed
at once (a failed run waits 10 minutes for the sensor's retry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datman_flow.config import load_config
from datman_flow.pipeline.pull import LISTING_ASKS, pull_session
from datman_flow.pipeline.resolve import resolve_session
from datman_flow.xnat import XnatBadResponse, XnatClient
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import make_session, one_site_study

LABEL = "SPN01_CMH_0001_01_01"


@pytest.fixture
def served(tmp_path: Path):
    make_session(tmp_path / "xnat", "SPINS_CMH", LABEL)
    with XnatEmulator(tmp_path / "xnat", user="u", password="p") as emu:
        configs = tmp_path / "configs"
        (configs / "studies").mkdir(parents=True)
        (configs / "tags.yml").write_text("T1: {qc: anat}\n")
        (configs / "studies" / "SPINS.yml").write_text(one_site_study(emu.url))
        target = resolve_session(load_config(configs), LABEL)
        yield emu, target, lambda: XnatClient(emu.url, "u", "p", retry_budget=2, backoff=0.01)


def test_an_incomplete_or_garbled_session_listing_is_asked_for_again(served, tmp_path: Path) -> None:
    emu, target, client = served
    emu.shorten_next_listing(drop=1, times=1)  # the experiments: 0 of 1 row
    emu.garbage_next(1)  # then an HTML page for the next listing
    pulled = pull_session(client, target, tmp_path / "raw")
    assert [(s.scan_id, s.status) for s in pulled.scans] == [("2", "complete"), ("5", "complete")]
    assert LISTING_ASKS == 3


def test_a_listing_refused_every_time_still_fails_the_pull(served, tmp_path: Path) -> None:
    emu, target, client = served
    emu.shorten_next_listing(drop=1, times=LISTING_ASKS)
    with pytest.raises(XnatBadResponse, match="totalRecords 1"):
        pull_session(client, target, tmp_path / "raw")
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())
