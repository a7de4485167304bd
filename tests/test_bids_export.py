"""The BIDS export on small hand-made sessions: what goes where, what is left out and why, runs
across repeats, field maps, dates, incremental and idempotent re-exports, hostile records; each
dataset checked by the real BIDS validator and read back with pybids."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bids_helpers import assert_valid, exported_niftis, indexed_runs

from datman_flow.atomic import current_umask
from datman_flow.cli import main
from datman_flow.config import load_config
from datman_flow.layout import DataLayout
from datman_flow.naming import output_stem, parse_session_label
from datman_flow.pipeline.bids import export_study
from datman_flow.review.scales import Rating
from datman_flow.store import CheckRow, SeriesRow, SessionRow

from review_helpers import decide, rate, register_picture, sign_off

TAGS = """
T1: {qc: anat, bids: {datatype: anat, suffix: T1w}}
RST: {qc: fmri, bids: {datatype: func, suffix: bold, task: rest}}
DWI: {qc: dwi, bids: {datatype: dwi, suffix: dwi}}
FMAP: {qc: ignore, bids: {datatype: fmap, suffix: phasediff}}
ASL: {qc: ignore, bids: {datatype: extra, suffix: pcasl}}
LOC: {qc: ignore}
"""
STUDY = """
study: TST
xnat: {{url: http://127.0.0.1:1, project: P}}
{bids}
sites:
  AAA:
    tags:
      T1: {{match: {{SeriesDescription: T1}}}}
"""


def configs(root: Path, bids: str = "") -> Path:
    folder = root / "configs"
    (folder / "studies").mkdir(parents=True, exist_ok=True)
    (folder / "tags.yml").write_text(TAGS)
    (folder / "studies" / "TST.yml").write_text(STUDY.format(bids=bids))
    return folder


def write_image(path: Path, shape: tuple[int, ...], sidecar: dict, tr: float = 2.0) -> None:
    img = nib.Nifti1Image(np.random.default_rng(0).random(shape, dtype=np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    if len(shape) == 4:
        img.header["pixdim"][4] = tr
    nib.save(img, path)
    path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))


def add_session(data: Path, label: str, series: list[tuple[str, str, str]], *, scan_date: str = "20240115",
                status: str = "ingested") -> list[SeriesRow]:
    """A session recorded as ingested, its series (number, tag, description) converted for real."""
    layout = DataLayout(data)
    scan_id = parse_session_label(label)
    folder = layout.nii(scan_id)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for number, tag, description in series:
        stem = output_stem(scan_id, tag, number, description)
        outputs = []
        if tag == "FMAP" and "phase" in description:
            sets = {f"{stem}_e2_ph": {"EchoTime": 0.00746, "EchoTime1": 0.00492, "EchoTime2": 0.00738}}
        elif tag == "FMAP":
            sets = {f"{stem}_e1": {"EchoTime": 0.00492}, f"{stem}_e2": {"EchoTime": 0.00738}}
        else:
            sets = {stem: {}}
        for base, extra in sets.items():
            four_d = tag in ("RST", "DWI")
            sidecar = {"RepetitionTime": 2.0, "AcquisitionTime": "10:11:12.5", "AcquisitionDateTime":
                       "2024-01-15T10:11:12", "PhaseEncodingDirection": "j-", "EchoTime": 0.03} | extra
            if tag == "RST":
                sidecar["SliceTiming"] = [0.0, 0.5, 1.0, 1.5]
            write_image(folder / f"{base}.nii.gz", (4, 4, 4, 3) if four_d else (4, 4, 4), sidecar)
            outputs += [str(folder / f"{base}.nii.gz"), str(folder / f"{base}.json")]
            if tag == "DWI":
                (folder / f"{base}.bval").write_text("0 1000 1000\n")
                (folder / f"{base}.bvec").write_text("0 1 0\n0 0 1\n0 0 0\n")
                outputs += [str(folder / f"{base}.bval"), str(folder / f"{base}.bvec")]
        rows.append(SeriesRow(session=label, scan_id=number, series_number=number, description=description, tag=tag,
                              download_status="complete", nifti_path=outputs[0], outputs=tuple(outputs),
                              conversion_status="converted"))
    store = layout.metric_store
    store.replace(SessionRow, label, [SessionRow(session=label, study=scan_id.study, site=scan_id.site,
                                                 subject=scan_id.subject, timepoint=scan_id.timepoint,
                                                 repeat=scan_id.repeat, is_phantom=scan_id.is_phantom,
                                                 scan_date=scan_date, status=status)])
    store.replace(SeriesRow, label, rows)
    return rows


FULL = [("2", "T1", "T1"), ("3", "RST", "rest"), ("4", "DWI", "dwi"), ("5", "FMAP", "fmap"),
        ("6", "FMAP", "fmap phase"), ("7", "ASL", "pcasl"), ("8", "LOC", "loc")]


@pytest.fixture()
def study(tmp_path):
    data = tmp_path / "data"
    return data, configs(tmp_path), tmp_path / "bids"


def export(data: Path, config_dir: Path, out: Path, **kwargs):
    return export_study(load_config(config_dir), DataLayout(data), "TST", out=out, **kwargs)


def test_a_signed_off_session_exports_as_valid_bids(study):
    data, config_dir, out = study
    add_session(data, "TST_AAA_0001_01_01", FULL)
    sign_off(DataLayout(data).metric_store, "TST_AAA_0001_01_01", "alice")
    done = export(data, config_dir, out).participants
    assert done.written == ["sub-AAA0001/ses-01"]
    anat = out / "sub-AAA0001/ses-01/anat/sub-AAA0001_ses-01_T1w.nii.gz"
    source = data / "nii/TST_AAA_0001_01/TST_AAA_0001_01_01_T1_02_T1.nii.gz"
    assert anat.stat().st_ino == source.stat().st_ino  # a hard link, not a copy
    assert exported_niftis(out) == [
        "sub-AAA0001/ses-01/anat/sub-AAA0001_ses-01_T1w.nii.gz",
        "sub-AAA0001/ses-01/dwi/sub-AAA0001_ses-01_dwi.nii.gz",
        "sub-AAA0001/ses-01/extra/sub-AAA0001_ses-01_pcasl.nii.gz",
        "sub-AAA0001/ses-01/fmap/sub-AAA0001_ses-01_magnitude1.nii.gz",
        "sub-AAA0001/ses-01/fmap/sub-AAA0001_ses-01_magnitude2.nii.gz",
        "sub-AAA0001/ses-01/fmap/sub-AAA0001_ses-01_phasediff.nii.gz",
        "sub-AAA0001/ses-01/func/sub-AAA0001_ses-01_task-rest_bold.nii.gz"]
    bold = json.loads((out / "sub-AAA0001/ses-01/func/sub-AAA0001_ses-01_task-rest_bold.json").read_text())
    assert bold["TaskName"] == "rest" and "AcquisitionDateTime" not in bold  # dates removed by default
    phasediff = json.loads((out / "sub-AAA0001/ses-01/fmap/sub-AAA0001_ses-01_phasediff.json").read_text())
    assert phasediff["IntendedFor"] == ["bids::sub-AAA0001/ses-01/dwi/sub-AAA0001_ses-01_dwi.nii.gz",
                                        "bids::sub-AAA0001/ses-01/func/sub-AAA0001_ses-01_task-rest_bold.nii.gz"]
    assert (out / "sub-AAA0001/ses-01/dwi/sub-AAA0001_ses-01_dwi.bval").read_text() == "0 1000 1000\n"
    assert (out / ".bidsignore").read_text() == "**/extra\n"
    assert (out / "participants.tsv").read_text() == "participant_id\nsub-AAA0001\n"
    assert (out / "sub-AAA0001/sub-AAA0001_sessions.tsv").read_text() == "session_id\nses-01\n"
    assert [(i.series, i.reason) for i in done.left_out] == [("8", "tag LOC has no bids: mapping in tags.yml")]
    assert_valid(out)
    assert indexed_runs(out) == [n for n in exported_niftis(out) if "/extra/" not in n]


def test_left_out_sessions_and_series_say_why(study):
    data, config_dir, out = study
    store = DataLayout(data).metric_store
    add_session(data, "TST_AAA_0001_01_01", FULL[:3])  # not signed off
    add_session(data, "TST_AAA_0002_01_01", FULL[:3], status="failed")
    add_session(data, "TST_AAA_0003_01_01", FULL[:3])
    sign_off(store, "TST_AAA_0003_01_01", "alice")
    rate(store, register_picture(store, "TST_AAA_0003_01_01", series="3", tag="RST"), Rating.FAIL, "bob",
         notes="ghosting")  # after the sign-off: the session's review failed since
    add_session(data, "TST_AAA_0004_01_01", FULL[:3])
    decide(store, "TST_AAA_0004_01_01", "3", "blacklisted", "carol", "motion")
    sign_off(store, "TST_AAA_0004_01_01", "carol")  # signed off after the blacklisting: settled
    rows = add_session(data, "TST_AAA_0005_01_01", FULL[:3])
    store.replace(SeriesRow, "TST_AAA_0005_01_01", [rows[0], rows[1].__class__(**{
        **vars(rows[1]), "conversion_status": "failed", "conversion_message": "dcm2niix wrote no NIfTI"}), rows[2]])
    sign_off(store, "TST_AAA_0005_01_01", "carol")
    done = export(data, config_dir, out).participants
    reasons = {(i.session[-10:], i.series): i.reason for i in done.left_out}
    assert reasons[("0001_01_01", "")] == "not signed off by a reviewer (bids: require_sign_off)"
    assert reasons[("0002_01_01", "")].startswith("ingestion failed")
    assert reasons[("0003_01_01", "")].startswith("review failed, not signed off since: series 3 (RST)")
    assert reasons[("0004_01_01", "3")] == "blacklisted by carol: motion"
    assert reasons[("0005_01_01", "3")] == "conversion failed: dcm2niix wrote no NIfTI"
    assert done.written == ["sub-AAA0004/ses-01", "sub-AAA0005/ses-01"]
    assert not list(out.glob("sub-AAA0004/ses-01/func/*"))
    assert_valid(out)


def test_repeats_share_the_visit_with_runs_and_re_export_is_incremental(study):
    data, config_dir, out = study
    store = DataLayout(data).metric_store
    add_session(data, "TST_AAA_0001_01_01", FULL[:2] + [("9", "T1", "T1 again")])
    sign_off(store, "TST_AAA_0001_01_01", "alice")
    first = export(data, config_dir, out).participants
    assert first.written == ["sub-AAA0001/ses-01"]
    assert sorted(p.name for p in out.glob("sub-AAA0001/ses-01/anat/*.nii.gz")) == [
        "sub-AAA0001_ses-01_run-1_T1w.nii.gz", "sub-AAA0001_ses-01_run-2_T1w.nii.gz"]
    again = export(data, config_dir, out).participants
    assert again.written == [] and again.unchanged == ["sub-AAA0001/ses-01"]
    # the participant came back the same day (repeat 02): its T1 continues the runs, its BOLD gets run-2
    add_session(data, "TST_AAA_0001_01_02", FULL[:2])
    sign_off(store, "TST_AAA_0001_01_02", "alice")
    third = export(data, config_dir, out).participants
    assert third.written == ["sub-AAA0001/ses-01"]
    assert sorted(p.name for p in out.glob("sub-AAA0001/ses-01/*/*.nii.gz")) == [
        "sub-AAA0001_ses-01_run-1_T1w.nii.gz", "sub-AAA0001_ses-01_run-2_T1w.nii.gz",
        "sub-AAA0001_ses-01_run-3_T1w.nii.gz",
        "sub-AAA0001_ses-01_task-rest_run-1_bold.nii.gz", "sub-AAA0001_ses-01_task-rest_run-2_bold.nii.gz"]
    assert_valid(out)
    # a FAIL after the sign-off takes the repeat out again; the visit goes back to repeat 01 alone
    rate(store, register_picture(store, "TST_AAA_0001_01_02", series="3", tag="RST"), Rating.FAIL, "bob")
    fourth = export(data, config_dir, out).participants
    assert fourth.written == ["sub-AAA0001/ses-01"]
    assert len(list(out.glob("sub-AAA0001/ses-01/*/*.nii.gz"))) == 3
    # nothing of the visit may go out any more: its folder is removed, and the participant's
    rate(store, register_picture(store, "TST_AAA_0001_01_01", series="2", tag="T1"), Rating.FAIL, "bob")
    fifth = export(data, config_dir, out).participants
    assert fifth.removed == ["sub-AAA0001/ses-01"] and not (out / "sub-AAA0001").exists()
    assert (out / "participants.tsv").read_text() == "participant_id\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".datman-flow-build-")]


def test_dates_shifted_for_the_whole_study(tmp_path):
    data = tmp_path / "data"
    config_dir = configs(tmp_path, "bids: {scan_dates: shift, date_shift_days: -73000, require_sign_off: false}")
    add_session(data, "TST_AAA_0001_01_01", FULL[:2], scan_date="20240115")
    add_session(data, "TST_AAA_0001_02_01", FULL[:2], scan_date="2024-03-01")
    out = tmp_path / "bids"
    export(data, config_dir, out)
    first, second = (day - timedelta(days=73000) for day in (date(2024, 1, 15), date(2024, 3, 1)))
    assert first.year == 1824 and (second - first).days == 46  # the intervals kept
    assert (out / "sub-AAA0001/sub-AAA0001_sessions.tsv").read_text() == \
        f"session_id\tacq_time\nses-01\t{first}T00:00:00\nses-02\t{second}T00:00:00\n"
    scans = (out / "sub-AAA0001/ses-01/sub-AAA0001_ses-01_scans.tsv").read_text()
    assert f"anat/sub-AAA0001_ses-01_T1w.nii.gz\t{first}T10:11:12" in scans
    sidecar = json.loads((out / "sub-AAA0001/ses-01/anat/sub-AAA0001_ses-01_T1w.json").read_text())
    assert sidecar["AcquisitionDateTime"] == f"{first}T10:11:12"
    assert_valid(out)
    # --since: only the later visit is looked at, the earlier one stays as it is
    done = export(data, config_dir, out, since=date(2024, 2, 1)).participants
    assert done.unchanged == ["sub-AAA0001/ses-02"] and (out / "sub-AAA0001/ses-01").is_dir()
    # a repeat of visit 01 scanned later: --since brings in the whole visit, its first repeat kept
    add_session(data, "TST_AAA_0001_01_02", FULL[:1], scan_date="20240310")
    done = export(data, config_dir, out, since=date(2024, 3, 5)).participants
    assert done.written == ["sub-AAA0001/ses-01"] and done.unchanged == []
    assert sorted(p.name for p in out.glob("sub-AAA0001/ses-01/*/*.nii.gz")) == [
        "sub-AAA0001_ses-01_run-1_T1w.nii.gz", "sub-AAA0001_ses-01_run-2_T1w.nii.gz",
        "sub-AAA0001_ses-01_task-rest_bold.nii.gz"]


def test_phantoms_go_to_their_own_dataset(tmp_path):
    data = tmp_path / "data"
    config_dir = configs(tmp_path, "bids: {require_sign_off: false}")
    add_session(data, "TST_AAA_PHA_FBN0007", FULL[:1])
    add_session(data, "TST_AAA_0001_01_01", FULL[:1])
    out = tmp_path / "bids"
    done = export(data, config_dir, out)
    assert done.participants.written == ["sub-AAA0001/ses-01"]
    assert done.phantoms.dataset == tmp_path / "bids_phantoms"
    assert exported_niftis(tmp_path / "bids_phantoms") == ["sub-AAAFBN/ses-0007/anat/sub-AAAFBN_ses-0007_T1w.nii.gz"]
    assert not list(out.glob("sub-AAAFBN*"))
    assert_valid(tmp_path / "bids_phantoms")


def test_hostile_records_are_refused_and_nothing_outside_is_touched(study):
    data, config_dir, out = study
    store = DataLayout(data).metric_store
    rows = add_session(data, "TST_AAA_0001_01_01", FULL[:2])
    outside = data.parent / "secret.nii.gz"
    outside.write_bytes(b"not yours")
    store.replace(SeriesRow, "TST_AAA_0001_01_01", [rows[0], rows[1].__class__(**{
        **vars(rows[1]), "outputs": (str(outside),)})])
    sign_off(store, "TST_AAA_0001_01_01", "alice")
    # a ledger naming a folder outside the dataset: never removed
    (out / "code/datman-flow").mkdir(parents=True)
    (out / "code/datman-flow/export.json").write_text(json.dumps({"visits": {"../victim": {"fingerprint": "x"}}}))
    victim = out.parent / "victim"
    victim.mkdir()
    with pytest.raises(ValueError, match="not a visit folder"):
        export(data, config_dir, out)
    assert victim.is_dir() and outside.read_bytes() == b"not yours"
    (out / "code/datman-flow/export.json").unlink()
    done = export(data, config_dir, out).participants
    [bad] = [i for i in done.left_out if i.series == "3"]
    assert bad.reason.startswith("its recorded outputs cannot be used:") and "not inside" in bad.reason
    assert exported_niftis(out) == ["sub-AAA0001/ses-01/anat/sub-AAA0001_ses-01_T1w.nii.gz"]
    assert oct(os.stat(out / "participants.tsv").st_mode & 0o777) == oct(0o666 & ~current_umask())



def test_drift_errors_left_out_only_when_the_study_says_so(tmp_path):
    data = tmp_path / "data"
    store = DataLayout(data).metric_store
    add_session(data, "TST_AAA_0001_01_01", FULL[:2])
    store.replace(CheckRow, "TST_AAA_0001_01_01", [
        CheckRow(session="TST_AAA_0001_01_01", check_name="header_drift", tag="T1", passed=False,
                 detail="EchoTime changed", series=("2",)),
        CheckRow(session="TST_AAA_0001_01_01", check_name="header_drift", tag="RST", passed=True, series=("3",))])
    sign_off(store, "TST_AAA_0001_01_01", "alice")
    warn_only = configs(tmp_path / "a", "bids: {exclude_drift_errors: true}")
    assert export(data, warn_only, tmp_path / "a_bids").participants.written == ["sub-AAA0001/ses-01"]  # severity warn
    strict = configs(tmp_path / "b", "header_check: {severity: error}\nbids: {exclude_drift_errors: true}")
    done = export(data, strict, tmp_path / "b_bids").participants
    assert done.written == [] and [i.reason for i in done.left_out] == [
        "header drift failed at severity error (T1; bids: exclude_drift_errors)"]
    lenient = configs(tmp_path / "c", "header_check: {severity: error}")
    assert export(data, lenient, tmp_path / "c_bids").participants.written == ["sub-AAA0001/ses-01"]


def test_the_command_says_what_it_did_and_refuses_bad_input(study, capsys):
    data, config_dir, out = study
    add_session(data, "TST_AAA_0001_01_01", FULL[:3])
    add_session(data, "TST_AAA_0002_01_01", FULL[:1])
    sign_off(DataLayout(data).metric_store, "TST_AAA_0001_01_01", "alice")
    base = ["bids", "export", "--data-dir", str(data), "--config-dir", str(config_dir)]
    assert main(base + ["--study", "TST", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"participants: {out}\n  1 visit(s) written, 0 unchanged, 0 removed; 0 T1w with derivatives" in printed
    assert "left out session TST_AAA_0002_01_01: not signed off by a reviewer (bids: require_sign_off)" in printed
    assert main(base + ["--study", "TST", "--out", str(out), "--json"]) == 0
    [participants, phantoms] = json.loads(capsys.readouterr().out)
    assert participants["unchanged"] == ["sub-AAA0001/ses-01"] and phantoms["written"] == []
    assert main(base + ["--study", "NOPE"]) == 2
    assert "study 'NOPE' is not configured (known: TST)" in capsys.readouterr().err
    (tmp_path_file := out.parent / "a_file").write_text("x")
    assert main(base + ["--study", "TST", "--out", str(tmp_path_file)]) == 2
    with pytest.raises(SystemExit):
        main(base + ["--study", "TST", "--since", "last week"])
    assert "'last week' is not a date YYYY-MM-DD" in capsys.readouterr().err
