"""Shared fixtures: the real DICOM archives of ../shared/dicom, unpacked once per test session."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DICOM = REPO.parent / "shared" / "dicom"
ARCHIVES = ("siemens_xa30", "ge_siemens_nih", "siemens_mosaic", "philips_ingenia")


@pytest.fixture(scope="session")
def repo_configs() -> Path:
    return REPO / "configs"


@pytest.fixture(scope="session")
def real_dicom(tmp_path_factory: pytest.TempPathFactory):
    """A function name -> unpacked archive folder (with In/ and Ref/), unpacking on first use."""
    if not SHARED_DICOM.is_dir():
        pytest.skip(f"real DICOM archives not found at {SHARED_DICOM} (../shared/dicom beside the repository)")
    root = tmp_path_factory.mktemp("real_dicom")
    unpacked: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in unpacked:
            archive = SHARED_DICOM / f"{name}.tar.gz"
            if not archive.exists():
                pytest.skip(f"{archive} is absent")
            with tarfile.open(archive) as tar:
                tar.extractall(root, filter="data")
            unpacked[name] = root / name
        return unpacked[name]

    return get
