"""Shared fixtures: the real DICOM archives of ../shared/dicom, unpacked once per test session;
one small session served by the XNAT emulator, and a client for it (the client tests)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from datman_flow.xnat import XnatClient
from datman_flow.xnat.emulator import XnatEmulator

from xnat_helpers import LABEL, make_session

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


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = tmp_path / "xnat"
    make_session(root, "STUDYA", LABEL, series=[
        ("1.2.3.2", 2, "T1w MPRAGE", 3), ("1.2.3.5", 5, "rest BOLD", 40), ("1.2.3.6", 6, "fmap", 2)])
    return root


@pytest.fixture()
def emu(data: Path):
    with XnatEmulator(data) as server:
        yield server


@pytest.fixture()
def client(emu: XnatEmulator):
    with XnatClient(emu.url, "admin", "admin", timeout=(2, 10), retry_budget=2, backoff=0.01) as c:
        yield c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that reads the real scanner archives is `slow` (`make test-quick` leaves them out)."""
    for item in items:
        if "real_dicom" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
