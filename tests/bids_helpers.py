"""The real BIDS validator (the maintainers' own, `bids-validator-deno` from PyPI: a compiled
Deno build, no Node needed) and pybids, on an exported dataset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VALIDATOR = "bids-validator-deno"


def validator() -> str:
    found = shutil.which(VALIDATOR) or str(Path(sys.executable).parent / VALIDATOR)
    if not Path(found).exists():
        pytest.skip(f"{VALIDATOR} is not installed (`pip install bids-validator-deno`, in the dev extra)")
    return found


def validate(dataset: Path) -> tuple[list[dict], list[dict]]:
    """The validator's errors and warnings on `dataset` (its derivatives validated too)."""
    run = subprocess.run([validator(), str(dataset), "--format", "json", "--recursive"], capture_output=True,
                         text=True, timeout=600, check=False)
    try:
        issues = json.loads(run.stdout)["issues"]["issues"]
    except (ValueError, KeyError) as exc:
        raise AssertionError(f"the validator did not report (exit {run.returncode}): {exc}\n{run.stderr[-2000:]}") \
            from None
    errors = [i for i in issues if i.get("severity") == "error"]
    return errors, [i for i in issues if i.get("severity") == "warning"]


def assert_valid(dataset: Path) -> list[dict]:
    errors, warnings = validate(dataset)
    assert not errors, "\n".join(f"{e.get('code')} {e.get('location')} {e.get('issueMessage', '')[:300]}"
                                 for e in errors)
    return warnings


def indexed_runs(dataset: Path) -> list[str]:
    """The NIfTI images pybids finds (paths relative to the dataset), derivatives left out."""
    bids = pytest.importorskip("bids", reason="pybids is in the dev extra")
    layout = bids.BIDSLayout(str(dataset), validate=True, derivatives=False)
    return sorted(str(Path(f.path).relative_to(dataset)) for f in layout.get(extension=[".nii.gz"]))


def exported_niftis(dataset: Path) -> list[str]:
    return sorted(str(p.relative_to(dataset)) for p in dataset.glob("sub-*/ses-*/*/*.nii.gz"))
