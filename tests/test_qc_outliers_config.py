"""The `qc_outliers:` block of a study file: defaults, study level, per-site override, and every
mistake refused with its file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from datman_flow.config import QcOutliers, check_config, load_config

from pipeline_helpers import CONFIGS

HEAD = "study: SPN01\nxnat: {url: 'http://x', project: P}\n"


def write(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "configs"
    (root / "studies").mkdir(parents=True)
    (root / "tags.yml").write_text((CONFIGS / "tags.yml").read_text())
    (root / "studies" / "S.yml").write_text(textwrap.dedent(text))
    return root


def test_defaults_study_block_and_site_override(tmp_path):
    root = write(tmp_path, HEAD + "qc_outliers:\n  z: 4\nsites:\n  CMH:\n  ZHH:\n    qc_outliers: {min_history: 3}\n"
                 "  MRC:\n    qc_outliers: {z: 2.5, min_history: 20}\n")
    config = load_config(root, env={})
    assert config.study("SPN01").qc_outliers == QcOutliers(min_history=8, z=4.0)
    assert config.site("SPN01", "CMH").qc_outliers == QcOutliers(min_history=8, z=4.0)  # the study's
    assert config.site("SPN01", "ZHH").qc_outliers == QcOutliers(min_history=3, z=4.0)  # z from the study
    assert config.site("SPN01", "MRC").qc_outliers == QcOutliers(min_history=20, z=2.5)
    bare = load_config(write(tmp_path / "b", HEAD + "sites: {CMH: }\n"), env={})
    assert bare.site("SPN01", "CMH").qc_outliers == QcOutliers() == QcOutliers(min_history=8, z=3.5)


def test_the_example_study_documents_the_block_and_it_loads_uncommented(tmp_path):
    text = (CONFIGS / "studies" / "SPINS.yml").read_text()
    assert "\n# qc_outliers:" in text and "\n#   min_history: 8" in text and "\n#   z: 3.5" in text
    root = write(tmp_path, text.replace("\n# qc_outliers:", "\nqc_outliers:").replace("\n#   min_history: 8", "\n  min_history: 8")
                 .replace("\n#   z: 3.5", "\n  z: 3.5"))
    assert load_config(root, env={}).site("SPN01", "CMH").qc_outliers == QcOutliers(min_history=8, z=3.5)


@pytest.mark.parametrize("block, line, message", [
    ("qc_outliers:\n  z: 0\n", 4, "qc_outliers.z: must be more than 0, got number 0"),
    ("qc_outliers:\n  z: -1.5\n", 4, "qc_outliers.z: must be more than 0, got number -1.5"),
    ("qc_outliers:\n  z: .inf\n", 4, "qc_outliers.z: must be a finite number, got number inf"),
    ("qc_outliers:\n  z: '3.5'\n", 4, "qc_outliers.z: expected a number, got '3.5'"),
    ("qc_outliers:\n  z: yes\n", 4, "qc_outliers.z: expected a number, got yes/no value true"),
    ("qc_outliers:\n  min_history: 0\n", 4, "qc_outliers.min_history: must be 1 or more, got number 0"),
    ("qc_outliers:\n  min_history: 2.5\n", 4, "qc_outliers.min_history: expected a whole number, got number 2.5"),
    ("qc_outliers:\n  z: 3\n  min_histroy: 8\n", 5, "unknown key 'min_histroy' (did you mean 'min_history'?)"),
    ("qc_outlier: {z: 3}\n", 3, "unknown key 'qc_outlier' (did you mean 'qc_outliers'?)"),
    ("qc_outliers: 3.5\n", 3, "qc_outliers: expected a mapping (indented 'key: value' lines), got number 3.5"),
])
def test_a_bad_study_block_is_refused_with_its_line(tmp_path, block, line, message):
    root = write(tmp_path, HEAD + block + "sites: {CMH: }\n")
    issues = check_config(root, env={})
    assert [(i.file, i.line, i.message) for i in issues] == [(f"{root}/studies/S.yml", line, message)]


def test_a_bad_site_block_is_refused_with_its_line(tmp_path):
    root = write(tmp_path, HEAD + "sites:\n  CMH:\n  ZHH:\n    qc_outliers:\n      min_history: -2\n      z: 3\n")
    assert [str(i) for i in check_config(root, env={})] == [
        f"{root}/studies/S.yml:7: sites.ZHH.qc_outliers.min_history: must be 1 or more, got number -2"]
