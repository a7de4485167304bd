"""The one table of QC kinds: what the config accepts, what the CLI offers, what is flagged."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

import pytest

from datman_flow.cli import build_parser
from datman_flow.config.models import TagQc
from datman_flow.qc.kinds import QC_KINDS, flag, outside_usual, qc_kind


def test_config_and_cli_take_their_kinds_from_the_table():
    assert set(get_args(TagQc)) == {*QC_KINDS, "ignore"}
    qc = build_parser().parse_args(["qc", "x.nii.gz", "--type", "dwi"])
    assert qc.type == "dwi"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["qc", "x.nii.gz", "--type", "t2"])
    with pytest.raises(ValueError, match="unknown QC type 't2'"):
        qc_kind("t2")


def test_every_kind_has_key_metrics_and_ranges_only_for_key_or_known_metrics():
    for name, spec in QC_KINDS.items():
        assert spec.name == name and spec.key_metrics and spec.modality
        assert len({r.metric for r in spec.ranges}) == len(spec.ranges)


def test_flags_only_the_bad_side_and_non_finite_values():
    assert flag("anat", "cnr", 0.5) and not flag("anat", "cnr", 50.0)  # a high CNR is no problem
    assert flag("anat", "efc", 0.9) and not flag("anat", "efc", 0.1)
    assert flag("anat", "wm2max", 0.2) and flag("anat", "wm2max", 0.95)  # in range: both sides bad
    assert flag("anat", "cjv", float("nan"))
    assert not flag("dwi", "snr_b0", 1.0)  # no usual range known: never flagged
    assert outside_usual(3.0, (None, 2.0), "lower") and not outside_usual(3.0, (None, 2.0), "higher")


def test_importing_the_table_loads_no_numerical_library():
    code = "import sys, datman_flow.qc.kinds; print(sorted(m for m in ('numpy', 'scipy', 'nibabel', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
