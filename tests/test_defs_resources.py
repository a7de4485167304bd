"""The resources of the Dagster layer: the configuration read once per run (and again for the
next run), XNAT credentials from the environment."""

from __future__ import annotations

import dagster as dg
import pytest

from datman_flow.defs import resources
from datman_flow.defs.partitions import SESSIONS
from datman_flow.defs.resources import DatmanSettings, XnatResource
from datman_flow.defs.runner import run_session
from datman_flow.defs.session_assets import SESSION_ASSETS
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import make_session, one_site_study

LABEL = "SPN01_CMH_0001_01_01"


@pytest.fixture
def lab(tmp_path):
    make_session(tmp_path / "xnat", "SPINS_CMH", LABEL)
    with XnatEmulator(tmp_path / "xnat", port=0, user="u", password="p") as xnat:
        configs = tmp_path / "configs"
        (configs / "studies").mkdir(parents=True)
        (configs / "tags.yml").write_text("T1: {qc: ignore}\n")
        study = configs / "studies" / "SPINS.yml"
        study.write_text(one_site_study(xnat.url, count=1))
        yield xnat, study, DatmanSettings(config_dir=str(configs), data_dir=str(tmp_path / "data"))


def materialize(instance, settings):
    if not instance.has_dynamic_partition(SESSIONS.name, LABEL):
        instance.add_dynamic_partitions(SESSIONS.name, [LABEL])
    result = dg.materialize(SESSION_ASSETS, partition_key=LABEL, instance=instance, raise_on_error=False,
                            resources={"datman": settings, "xnat": XnatResource(user="u", password="p")})
    assert result.success
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_the_configuration_is_read_once_per_run_and_again_for_the_next(lab, monkeypatch):
    xnat, study, settings = lab
    reads = []
    real = resources.load_config
    monkeypatch.setattr(resources, "load_config", lambda path: reads.append(path) or real(path))
    with dg.instance_for_test() as instance:
        assert materialize(instance, settings)["expected_series"] is True
        assert len(reads) == 1  # four assets and two checks, one read of the YAML
        study.write_text(study.read_text().replace("count: 1", "count: 2"))  # a study lead's edit
        assert materialize(instance, settings)["expected_series"] is False  # the same resource object
        assert len(reads) == 2


def test_a_run_without_xnat_credentials_says_which_are_missing(lab, monkeypatch, tmp_path):
    _, _, settings = lab
    monkeypatch.delenv("XNAT_USER", raising=False)
    monkeypatch.setenv("XNAT_PASS", "p")
    with dg.instance_for_test() as instance:
        run = run_session(instance, LABEL, settings.config_dir, tmp_path / "data")
    assert not run.success
    assert run.error == "raw_dicom: no credentials for XNAT: set the environment variables XNAT_USER and XNAT_PASS " \
                        "(missing: XNAT_USER)"
