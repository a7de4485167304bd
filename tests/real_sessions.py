"""The four real archives of ../shared/dicom served as XNAT sessions, with a study config for them."""

from __future__ import annotations

import os
from pathlib import Path

TAGS = """
T1: {qc: anat, bids: {datatype: anat, suffix: T1w}}
BOLD: {qc: fmri, bids: {datatype: func, suffix: bold, task: qa}}
DWI: {qc: dwi, bids: {datatype: dwi, suffix: dwi}}
FMAP: {qc: ignore, bids: {datatype: fmap, suffix: phasediff}}
ASL: {qc: ignore, bids: {datatype: extra, suffix: asl}}
EPI: {qc: fmri, bids: {datatype: func, suffix: bold, task: pe}}
"""

STUDY = """
study: QA01
xnat: {url: http://127.0.0.1:1, project: QA}
sites:
  XA30:
    xnat_project: QA_XA30
    tags:
      T1: {match: {SeriesDescription: 'T1w'}, count: 2}
      BOLD: {match: {SeriesDescription: 'func-bold'}}
      DWI: {match: {SeriesDescription: '^DWI_dir80'}, count: 2}
      FMAP: {match: {SeriesDescription: 'field_mapping'}, count: 2}
      ASL: {match: {SeriesDescription: '^asl'}}
  NIH:
    xnat_project: QA_NIH
    tags:
      EPI: {match: {SeriesDescription: 'EPI PE='}, count: 4}
      BOLD: {match: {SeriesDescription: 'EPI-FMRI'}, count: 4}
  MOS:
    xnat_project: QA_MOS
    tags:
      BOLD: {match: {SeriesDescription: ['^ep2d', '^cmrr']}, count: 8}
  PHI:
    xnat_project: QA_PHI
    tags:
      T1: {match: {SeriesDescription: 'MPRAGE'}}
      BOLD: {match: {SeriesDescription: '^fcMRI$'}}
      DWI: {match: {SeriesDescription: '^DTI_S2MB2'}}
      FMAP: {match: {SeriesDescription: 'Field Mapping'}}
      ASL: {match: {SeriesDescription: 'pCASL'}, count: 2}
"""

# archive -> (site, label)
SESSIONS = {
    "siemens_xa30": ("XA30", "QA01_XA30_0001_01_01"),
    "ge_siemens_nih": ("NIH", "QA01_NIH_0001_01_01"),
    "siemens_mosaic": ("MOS", "QA01_MOS_0001_01_01"),
    "philips_ingenia": ("PHI", "QA01_PHI_0001_01_01"),
}


def write_configs(root: Path, xnat_url: str) -> Path:
    configs = root / "configs"
    (configs / "studies").mkdir(parents=True, exist_ok=True)
    (configs / "tags.yml").write_text(TAGS)
    (configs / "studies" / "QA01.yml").write_text(STUDY.replace("http://127.0.0.1:1", xnat_url))
    return configs


def link_session(xnat_dir: Path, archive_dir: Path, site: str, label: str) -> None:
    """XNAT project QA_<SITE> holds the archive's In/ folder as session <label> (no copy)."""
    project = xnat_dir / f"QA_{site}"
    project.mkdir(parents=True, exist_ok=True)
    if not (project / label).exists():
        os.symlink(archive_dir / "In", project / label)
