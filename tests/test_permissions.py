"""Files and folders written by datman-flow get the mode the process's umask gives them: the
lab's other users can read an ingest (umask 022), or nobody else can (umask 077)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from datman_flow.atomic import apply_umask, atomic_path, current_umask, write_text_atomic
from datman_flow.xnat.emulator import XnatEmulator

from pipeline_helpers import PHANTOM, copy_session, ingest, sample_template


@pytest.fixture
def umask():
    """Set the process umask for one test (and put the old one back)."""
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    found = {str(root): stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


def wrong_modes(root: Path, mask: int) -> dict[str, str]:
    """Every file whose mode is not 0o666 & ~mask and every folder not 0o777 & ~mask."""
    wrong = {}
    for name, mode in modes(root).items():
        path = root / name
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        if mode != want:
            wrong[name] = f"{mode:o} (want {want:o})"
    return wrong


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_current_umask_is_read_without_changing_it(umask, mask):
    umask(mask)
    assert current_umask() == mask
    assert current_umask() == mask


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_atomic_writes_and_temporary_folders_follow_the_umask(umask, tmp_path, mask):
    umask(mask)
    write_text_atomic(tmp_path / "a" / "x.json", "{}")
    with atomic_path(tmp_path / "a" / "y.png", suffix=".png") as tmp:
        tmp.write_bytes(b"png")
    made = apply_umask(Path(tempfile.mkdtemp(prefix=".partial-", dir=tmp_path / "a")))
    (made / "f.dcm").write_bytes(b"dicom")
    assert wrong_modes(tmp_path / "a", mask) == {}


def test_gold_standard_files_follow_the_umask(umask, tmp_path):
    from datman_flow.drift.gold import GoldStandard, write_gold

    umask(0o022)
    path = write_gold(tmp_path, GoldStandard("SPN01", "CMH", "T1", {"EchoTime": 0.003}, {"session": "S"}))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return sample_template(tmp_path_factory.mktemp("samples"), [PHANTOM])


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_everything_an_ingest_writes_follows_the_umask(template, tmp_path, monkeypatch, umask, mask):
    copy_session(template, tmp_path / "xnat", "SPINS_CMH", PHANTOM)
    with XnatEmulator(tmp_path / "xnat", port=0, user="u", password="p") as emulator:
        monkeypatch.setenv("DATMAN_XNAT_URL", emulator.url)
        monkeypatch.setenv("XNAT_USER", "u")
        monkeypatch.setenv("XNAT_PASS", "p")
        umask(mask)
        run = ingest(PHANTOM, tmp_path / "data")
    assert run.success
    data = tmp_path / "data"
    kinds = {p.suffix for p in data.rglob("*") if p.is_file()}
    assert {".dcm", ".json", ".png", ".gz", ".parquet"} <= kinds  # DICOM, QC JSON, picture, NIfTI, rows
    wrong = wrong_modes(data, mask)
    assert wrong == {}, "\n".join(f"{k}: {v}" for k, v in sorted(wrong.items()))
