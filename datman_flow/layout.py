"""Where everything lives under the data folder (<data>, ./data by default)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from datman_flow.naming import ScanId
from datman_flow.store.metric_store import MetricStore

DEFAULT_DATA_DIR = "data"
DEFAULT_CONFIG_DIR = "configs"


def resolve_dir(option: str | None, env_var: str, default: str, env: Mapping[str, str] | None = None) -> Path:
    """A command-line option wins, then the environment variable, then the default."""
    env = os.environ if env is None else env
    return Path(option or env.get(env_var) or default).expanduser().resolve()


def data_dir_from(option: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    return resolve_dir(option, "DATMAN_DATA_DIR", DEFAULT_DATA_DIR, env)


def config_dir_from(option: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    return resolve_dir(option, "DATMAN_CONFIG_DIR", DEFAULT_CONFIG_DIR, env)


@dataclass(frozen=True)
class DataLayout:
    root: Path

    def raw_session(self, label: str) -> Path:
        """The DICOM pulled from XNAT: raw/<label>/<scan id>/..."""
        return self.root / "raw" / label

    def nii(self, scan_id: ScanId) -> Path:
        return self.root / "nii" / scan_id.subject_dir

    def derivatives(self, scan_id: ScanId) -> Path:
        """What the QC step derives from a T1w (brain mask, bias-corrected image, tissue maps, MNI
        space), <data>/derivatives/<subject dir>/<series stem>_<BIDS suffix>, each series' set listed
        by its `<stem>_derivatives.json` (qc/derivatives.py)."""
        return self.root / "derivatives" / scan_id.subject_dir

    def bids(self, study: str, phantoms: bool = False) -> Path:
        """The study's BIDS release, <data>/bids/<STUDY> (its phantoms: <data>/bids/<STUDY>_phantoms)."""
        return self.root / "bids" / (f"{study}_phantoms" if phantoms else study)

    def dcm(self, scan_id: ScanId) -> Path:
        return self.root / "dcm" / scan_id.subject_dir

    @property
    def trends(self) -> Path:
        """The QC trend figures, <data>/trends/<study>_<site>_<tag>[_phantom].png."""
        return self.root / "trends"

    @property
    def metric_store(self) -> MetricStore:
        """<data>/metrics.duckdb (views) over <data>/store/<table>/<session>.parquet."""
        return MetricStore.under(self.root)
