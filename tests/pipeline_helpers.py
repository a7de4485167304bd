"""Synthetic sessions served by the emulator, ingested through the Dagster job (shared by tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from datman_flow.defs.runner import SessionRun, run_session
from datman_flow.samples import write_sample_sessions

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
PHANTOM = "SPN01_CMH_PHA_FBN0001"  # one small T1 series (72 files): quick to pull and convert


def sample_template(root: Path, labels: list[str]) -> Path:
    """Generate the named sample sessions once; tests copy them."""
    write_sample_sessions(root, only=labels)
    return root


def copy_session(template: Path, xnat_dir: Path, project: str, label: str, as_label: str | None = None) -> Path:
    target = xnat_dir / project / (as_label or label)
    shutil.copytree(template / project / label, target)
    return target


def ingest(label: str, data_dir: Path, configs: Path = CONFIGS) -> SessionRun:
    with dg.DagsterInstance.ephemeral() as instance:
        return run_session(instance, label, configs, data_dir)


def series_files(session_dir: Path) -> list[Path]:
    return sorted(p for p in session_dir.rglob("*.dcm"))
