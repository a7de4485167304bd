"""Bad input and bad runs at the DICOM -> NIfTI boundary: a truncated header, several series under
one series number, dcm2niix failing, hanging or killed mid-run."""

from __future__ import annotations

import fcntl
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from datman_flow.config import TagRule
from datman_flow.dicom.convert import Dcm2niix, convert_series, find_dcm2niix
from datman_flow.dicom.index import index_scan
from datman_flow.dicom.session_convert import convert_session
from datman_flow.dicom.workdir import remove_leftover_work
from datman_flow.layout import DataLayout
from datman_flow.naming import parse_session_label
from datman_flow.records import PulledScan

from xnat_helpers import write_series

T1_RULES = {"T1": TagRule(tag="T1", match={"SeriesDescription": ("T1w",)})}
LABEL, OTHER_REPEAT = "SPN01_CMH_0001_01_01", "SPN01_CMH_0001_01_02"
SCAN_ID = parse_session_label(LABEL)
TOOL = find_dcm2niix()


def pulled(folder: Path) -> PulledScan:
    return PulledScan(scan_id="2", description="T1w MPRAGE", status="complete", message="", directory=str(folder))


# ---- 1. a bad first file must not hide the good ones ------------------------------------------

@pytest.mark.parametrize("keep_bytes", [140, 300, 420])  # in the meta group, in group 0008, in group 0020
def test_truncated_first_file_does_not_hide_the_series(tmp_path, keep_bytes):
    files = write_series(tmp_path / "2", series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE",
                         n_files=15)
    first = sorted(files)[0]
    first.write_bytes(first.read_bytes()[:keep_bytes])
    record = index_scan("S1", pulled(tmp_path / "2"), T1_RULES)
    assert record.tag == "T1", record.untagged_reason
    assert record.series_uid == "1.2.3.2" and record.series_number == "2"
    assert record.bad_files == (first.name,) and record.n_files == 15 and record.n_frames == 14


def test_every_header_truncated_lists_every_file(tmp_path):
    files = write_series(tmp_path / "2", series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE",
                         n_files=3)
    for path in files:
        path.write_bytes(path.read_bytes()[:300])
    record = index_scan("S1", pulled(tmp_path / "2"), T1_RULES)
    assert record.tag is None and "no readable DICOM header" in record.untagged_reason
    assert record.bad_files == tuple(sorted(p.name for p in files))
    assert record.conversion_status == "skipped"


def test_complete_series_has_no_bad_files(tmp_path):
    write_series(tmp_path / "2", series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE", n_files=4)
    record = index_scan("S1", pulled(tmp_path / "2"), T1_RULES)
    assert record.tag == "T1" and record.bad_files == () and record.n_frames == 4


def test_index_then_convert_names_the_truncated_first_file(tmp_path):
    files = write_series(tmp_path / "raw" / "2", series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE",
                         n_files=15)
    first = sorted(files)[0]
    first.write_bytes(first.read_bytes()[:300])
    record = index_scan(LABEL, pulled(tmp_path / "raw" / "2"), T1_RULES)
    [converted] = convert_session([record], SCAN_ID, DataLayout(tmp_path / "data"), TOOL)
    assert converted.conversion_status == "failed"
    assert f"1 of 15 files are not readable DICOM ({first.name})" in converted.conversion_message


# ---- 2. one scan, several series: never "converted" -------------------------------------------

def two_series_one_number(folder: Path) -> None:
    write_series(folder, series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE", n_files=3, prefix="a")
    write_series(folder, series_uid="1.2.3.22", series_number=2, description="T1w MPRAGE", n_files=3, prefix="b")


def test_two_series_instance_uids_under_one_series_number_fail(tmp_path):
    two_series_one_number(tmp_path / "raw" / "2")
    record = index_scan(LABEL, pulled(tmp_path / "raw" / "2"), T1_RULES)
    assert record.tag == "T1" and record.n_files == 6  # the index reads one header: it cannot tell
    layout = DataLayout(tmp_path / "data")
    [converted] = convert_session([record], SCAN_ID, layout, TOOL)
    assert converted.conversion_status == "failed" and converted.nifti_path is None
    stem = f"{LABEL}_T1_02_T1w-MPRAGE"
    assert f"unexpected: {stem}a" in converted.conversion_message
    assert "two SeriesInstanceUIDs under one series number" in converted.conversion_message
    assert not list(layout.nii(SCAN_ID).iterdir())  # nothing placed, no work folder left


def fake_dcm2niix(folder: Path, outputs: list[str], *, exit_code: int = 0, sleep: float = 0.0,
                  child_pid_file: Path | None = None) -> Dcm2niix:
    """A stand-in dcm2niix that writes the named files (given relative to the -f stem) into the
    -o folder, prints dcm2niix's counting lines, optionally starts a sleeping child process and
    sleeps, then exits with `exit_code`."""
    script = folder / "fake_dcm2niix"
    script.write_text(f"""#!{sys.executable}
import subprocess, sys, time
from pathlib import Path
args = sys.argv[1:]
stem, out, series = args[args.index("-f") + 1], Path(args[args.index("-o") + 1]), Path(args[-1])
n = len([p for p in series.iterdir() if p.is_file()])
print(f"Found {{n}} DICOM file(s)")
for name in {outputs!r}:
    (out / (stem + name)).write_bytes(b"fake")
print(f"Convert {{n}} DICOM as {{out / stem}}", flush=True)
if {str(child_pid_file)!r} != "None":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    Path({str(child_pid_file)!r}).write_text(str(child.pid))
time.sleep({sleep})
sys.exit({exit_code})
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return Dcm2niix(path=str(script), version="fake")


def convert_with(tool: Dcm2niix, tmp_path: Path):
    series = tmp_path / "series"
    write_series(series, series_uid="1.2.3.2", series_number=2, description="T1w", n_files=3)
    out = tmp_path / "nii"
    return convert_series(tool, series, out, "S", expected_files=3), out


def test_non_zero_exit_fails_even_with_images_written(tmp_path):
    tool = fake_dcm2niix(tmp_path, [".nii.gz", ".json"], exit_code=8)
    outcome, out = convert_with(tool, tmp_path)
    assert outcome.status == "failed" and outcome.nifti_path is None
    assert outcome.message.startswith("dcm2niix exit 8 (some files converted, some failed)")
    assert "S.nii.gz (not kept)" in outcome.message
    assert not list(out.iterdir())


def test_an_image_set_without_its_sidecar_fails(tmp_path):
    tool = fake_dcm2niix(tmp_path, [".nii.gz", ".json", "_e2.nii.gz"])
    outcome, out = convert_with(tool, tmp_path)
    assert outcome.status == "failed" and "no JSON sidecar for S_e2" in outcome.message
    assert not list(out.iterdir())


def test_echoes_and_phase_of_one_series_convert(tmp_path):
    names = [".nii.gz", ".json", "_e2.nii.gz", "_e2.json", "_e2_ph.nii.gz", "_e2_ph.json"]
    outcome, out = convert_with(fake_dcm2niix(tmp_path, names), tmp_path)
    assert outcome.status == "converted", outcome.message
    assert sorted(p.name for p in out.iterdir()) == sorted(f"S{n}" for n in names)
    assert outcome.nifti_path == str(out / "S.nii.gz")


@pytest.mark.parametrize("names, unexpected", [
    ([".nii.gz", ".json", "a.nii.gz", "a.json"], "Sa"),  # a second series, renamed by dcm2niix
    (["_e1.nii.gz", "_e1.json", "_e1a.nii.gz", "_e1a.json"], "S_e1a"),
    ([".nii.gz", ".json", "_Raw.nii.gz", "_Raw.json"], "S_Raw"),  # Philips raw data: not this series' images
])
def test_outputs_one_series_does_not_give_fail(tmp_path, names, unexpected):
    outcome, _ = convert_with(fake_dcm2niix(tmp_path, names), tmp_path)
    assert outcome.status == "failed" and f"unexpected: {unexpected}" in outcome.message


# ---- 3. deadlines and work folders a killed run left ------------------------------------------

def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_dcm2niix_past_its_deadline_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    tool = fake_dcm2niix(tmp_path, [".nii.gz"], sleep=60, child_pid_file=pid_file)
    tool = Dcm2niix(path=tool.path, version=tool.version, timeout_seconds=2)
    start = time.monotonic()
    outcome, out = convert_with(tool, tmp_path)
    assert time.monotonic() - start < 20
    assert outcome.status == "failed" and outcome.message.startswith("dcm2niix did not finish within 2 s: killed")
    assert not list(out.iterdir())  # the half-written work folder is gone
    deadline = time.monotonic() + 5
    while alive(int(pid_file.read_text())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(int(pid_file.read_text()))  # the child dcm2niix started died with it


def plant_work_folder(folder: Path, name: str, *, lock: bool = True, locked_by: list | None = None,
                      age: float = 0.0) -> Path:
    work = folder / name
    work.mkdir(parents=True)
    (work / f"{name[1:].split('.')[0]}.nii.gz").write_bytes(b"a complete image of a killed run")
    if lock:
        (work / ".lock").write_text("")
    if locked_by is not None:
        handle = open(work / ".lock")  # noqa: SIM115 - held open until the test ends
        fcntl.flock(handle, fcntl.LOCK_EX)
        locked_by.append(handle)
    if age:
        os.utime(work, (time.time() - age, time.time() - age))
    return work


def test_leftover_work_folders_of_the_session_are_removed_on_the_next_run(tmp_path):
    write_series(tmp_path / "raw" / "2", series_uid="1.2.3.2", series_number=2, description="T1w MPRAGE",
                 n_files=3)
    record = index_scan(LABEL, pulled(tmp_path / "raw" / "2"), T1_RULES)
    layout = DataLayout(tmp_path / "data")
    nii = layout.nii(SCAN_ID)
    stem = f"{LABEL}_T1_02_T1w-MPRAGE"
    killed = plant_work_folder(nii, f".{stem}.k1ll3d")
    other_session = plant_work_folder(nii, f".{OTHER_REPEAT}_T1_02_T1w-MPRAGE.x7y8z9")  # shares the folder
    held = []
    running = plant_work_folder(nii, f".{LABEL}_RST_05_rest.r4nn1n", locked_by=held)
    [converted] = convert_session([record], SCAN_ID, layout, TOOL)
    assert not killed.exists()
    assert other_session.exists() and running.exists()
    assert converted.conversion_status == "converted", converted.conversion_message
    assert sorted(p.name for p in nii.iterdir() if not p.name.startswith(".")) == [f"{stem}.json", f"{stem}.nii.gz"]
    assert converted.nifti_path == str(nii / f"{stem}.nii.gz")
    held[0].close()


def test_a_folder_without_lock_is_kept_while_young_and_removed_when_old(tmp_path):
    nii = tmp_path / "nii"
    young = plant_work_folder(nii, f".{LABEL}_T1_02_a.young", lock=False)
    old = plant_work_folder(nii, f".{LABEL}_T1_02_a.old", lock=False, age=3600)
    assert remove_leftover_work(nii, f"{LABEL}_") == [old.name]
    assert young.exists() and not old.exists()
