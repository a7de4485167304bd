"""The structural derivatives of a T1w (qc/derivatives.py) on a synthetic subject: the MNI152
template's own head at 3 mm, stored left-posterior-superior and moved by a known shift, so that
the QC's reorientation has to be undone and the registration has something to recover."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from datman_flow.pipeline.normalisation import CHECK_NAME, DerivedSeries, check_rows, morphometry_rows
from datman_flow.qc.derivative_images import canonical_affine, to_original
from datman_flow.qc.derivatives import (
    DICE_THRESHOLD,
    MANIFEST,
    SPACE,
    affine_in_template,
    derive,
    write_derivatives,
)
from datman_flow.qc.measure import analyse
from datman_flow.qc.mni_template import TEMPLATE_NAME, load_template
from datman_flow.qc.transform_files import itk_affine_text, read_itk_affine

SHIFT = (10.0, -20.0, 15.0)
NATIVE = ("desc-brain_mask.nii.gz", "desc-preproc_T1w.nii.gz", "label-CSF_probseg.nii.gz", "label-GM_probseg.nii.gz",
          "label-WM_probseg.nii.gz", "dseg.nii.gz")


def template_subject(path: Path, spacing: float = 3.0) -> Path:
    """The template's T1 on a ``spacing`` grid, voxel axes flipped in x and y (LPS), shifted."""
    tpl = load_template()
    vol = ndi.zoom(np.asarray(tpl.t1), 1.0 / spacing, order=1) * 1000.0
    affine = np.diag([-spacing, -spacing, spacing, 1.0])
    affine[:3, 3] = tpl.affine[:3, 3] + np.array(SHIFT)
    affine[0, 3] += spacing * (vol.shape[0] - 1)
    affine[1, 3] += spacing * (vol.shape[1] - 1)
    nib.save(nib.Nifti1Image(vol[::-1, ::-1, :].astype(np.float32), affine), path)
    return path


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deriv_subject")
    nifti = template_subject(folder / "STUDY_SITE_0001_01_01_T1_02_mprage.nii.gz")
    return nifti, analyse("anat", nifti)


@pytest.fixture(scope="module")
def written(subject, tmp_path_factory):
    nifti, measured = subject
    out = tmp_path_factory.mktemp("derivatives")
    return derive(nifti, measured.reuse, out, "affine", "datman-flow test", "abc"), out


def test_the_registration_recovers_the_shift_and_the_overlaps_are_reported(subject):
    _, measured = subject
    matrix = np.array(measured.result.extras["mni_affine"])
    assert np.allclose(matrix[:3, 3], SHIFT, atol=2.5)  # a template point -> the subject point it came from
    assert np.allclose(matrix[:3, :3], np.eye(3), atol=0.04)
    for c in ("csf", "gm", "wm"):
        assert 0.2 < measured.result.metrics[f"tpm_overlap_{c}"] < 1.0


def test_files_are_on_the_original_grid_and_agree_with_the_qc_arrays(subject, written):
    nifti, measured = subject
    done, out = written
    original = nib.load(nifti)
    seg = measured.reuse.segmentation
    stem = nifti.name[: -len(".nii.gz")]
    for suffix in NATIVE:
        img = nib.load(out / f"{stem}_{suffix}")
        assert img.shape == original.shape and np.allclose(img.affine, original.affine), suffix
    mask = np.asarray(nib.load(out / f"{stem}_desc-brain_mask.nii.gz").dataobj)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert np.array_equal(mask, to_original(seg.brain.astype(np.uint8), original.affine))
    dseg = np.asarray(nib.load(out / f"{stem}_dseg.nii.gz").dataobj)
    assert np.array_equal(dseg, to_original(seg.labels, original.affine)) and dseg.max() == 3
    voxel_ml = abs(np.linalg.det(original.affine[:3, :3])) / 1000.0
    tissue = measured.result.extras["tissue_ml"]
    for label, key in (("CSF", "csf"), ("GM", "gm"), ("WM", "wm")):
        pvm = nib.load(out / f"{stem}_label-{label}_probseg.nii.gz").get_fdata(dtype=np.float32)
        assert pvm.min() >= 0 and pvm.max() <= 1
        assert round(float(pvm.sum(dtype=np.float64)) * voxel_ml, 1) == pytest.approx(tissue[key], abs=0.11)
        assert getattr(done.morphometry, f"{key}_ml") == tissue[key]
    assert done.morphometry.tiv_ml == pytest.approx(sum(tissue.values()), abs=0.15)
    t1 = nib.load(out / f"{stem}_desc-preproc_T1w.nii.gz")
    assert t1.get_data_dtype() == np.int16
    corrected = to_original(measured.reuse.corrected, original.affine)
    assert np.allclose(t1.get_fdata(), corrected, atol=float(t1.dataobj.slope) * 0.51 + 1e-6)
    mni = nib.load(out / f"{stem}_{SPACE}_desc-preproc_T1w.nii.gz")
    assert mni.shape == (197, 233, 189) and np.allclose(mni.affine, load_template().affine)


def test_canonical_affine_is_nibabels():
    affine = np.array([[0, 0, -1.2, 90], [-1.0, 0, 0, 100], [0, 1.1, 0, -80], [0, 0, 0, 1]])
    img = nib.Nifti1Image(np.zeros((20, 30, 40), np.float32), affine)
    canon = nib.as_closest_canonical(img)
    assert np.allclose(canonical_affine(affine, img.shape), canon.affine)
    data = np.random.default_rng(0).random((20, 30, 40)).astype(np.float32)
    assert np.array_equal(to_original(np.asarray(nib.as_closest_canonical(nib.Nifti1Image(data, affine)).dataobj),
                                      affine), data)


def test_the_manifest_lists_exactly_what_exists(subject, written):
    nifti, _ = subject
    done, out = written
    stem = nifti.name[: -len(".nii.gz")]
    record = json.loads(done.manifest.read_text())
    assert record["pipeline"] == "datman-flow" and record["template"] == TEMPLATE_NAME
    assert record["source"] == nifti.name and record["source_md5"] == "abc"
    assert record["normalisation"]["method"] == "affine" and record["normalisation"]["threshold"] == DICE_THRESHOLD
    assert record["normalisation"]["passed"] is (record["normalisation"]["brain_dice"] >= DICE_THRESHOLD)
    listed = {f["path"] for f in record["files"]}
    present = {p.name for p in out.iterdir() if p.name != done.manifest.name}
    assert listed == present
    assert all(f["path"] == f"{stem}_{f['suffix']}" and isinstance(f["sidecar"], dict) for f in record["files"])
    suffixes = {f["suffix"] for f in record["files"]}
    assert set(NATIVE) <= suffixes and f"from-T1w_to-{TEMPLATE_NAME}_mode-image_xfm.txt" in suffixes
    assert f"{SPACE}_desc-brain_mask.nii.gz" in suffixes
    assert not any("probseg" in s and s.startswith(SPACE) for s in suffixes)  # template-space maps: SyN only
    assert record["morphometry"]["tiv_ml"] == done.morphometry.tiv_ml


def test_a_rerun_replaces_the_files_and_drops_what_it_no_longer_writes(subject, written):
    nifti, measured = subject
    _, out = written
    stem = nifti.name[: -len(".nii.gz")]
    stale = out / f"{stem}_from-T1w_to-{TEMPLATE_NAME}_mode-image_xfm.h5"  # as an earlier SyN run left it
    record = json.loads((out / f"{stem}{MANIFEST}").read_text())
    record["files"].append({"suffix": stale.name[len(stem) + 1:], "path": stale.name, "sidecar": {}})
    (out / f"{stem}{MANIFEST}").write_text(json.dumps(record))
    stale.write_bytes(b"old")
    before = sorted(p.name for p in out.iterdir() if p != stale)
    again = derive(nifti, measured.reuse, out, "affine", "datman-flow test", "abc")
    assert sorted(p.name for p in out.iterdir()) == before and not stale.exists()
    assert json.loads(again.manifest.read_text())["files"] == json.loads(again.manifest.read_text())["files"]
    assert {f["path"] for f in json.loads(again.manifest.read_text())["files"]} == set(before) - {again.manifest.name}


def test_the_transform_file_is_itk_text_of_the_affine(subject, written):
    nifti, measured = subject
    _, out = written
    stem = nifti.name[: -len(".nii.gz")]
    text = (out / f"{stem}_from-T1w_to-{TEMPLATE_NAME}_mode-image_xfm.txt").read_text()
    assert text.startswith("#Insight Transform File V1.0") and "AffineTransform_double_3_3" in text
    assert np.allclose(read_itk_affine(text), measured.reuse.registration.matrix)
    assert np.allclose(read_itk_affine(itk_affine_text(np.eye(4))), np.eye(4))


def test_a_broken_registration_fails_the_normalisation_check(subject, tmp_path):
    nifti, measured = subject
    analysis = measured.reuse
    bad = analysis.registration.matrix.copy()
    angle = np.deg2rad(50)
    bad[:3, :3] = bad[:3, :3] @ np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)],
                                          [0, np.sin(angle), np.cos(angle)]])
    bad[:3, 3] += (0, 25, -20)
    broken = replace(analysis.registration, matrix=bad)
    in_tpl = affine_in_template(analysis.corrected, analysis.segmentation, analysis.affine, broken, analysis.template)
    done = write_derivatives(nifti, tmp_path, analysis.segmentation, analysis.corrected, in_tpl, analysis.template,
                             "test", "abc")
    assert done.brain_dice < DICE_THRESHOLD and not done.passed
    assert json.loads(done.manifest.read_text())["normalisation"]["passed"] is False
    (row,) = check_rows("S", [DerivedSeries("2", "T1", done)])
    assert row.check_name == CHECK_NAME and row.passed is False and row.series == ("2",)
    assert f"brain overlap with {TEMPLATE_NAME} {done.brain_dice:.2f} < 0.80: the normalisation failed" in row.detail
    (volumes,) = morphometry_rows("S", [DerivedSeries("2", "T1", done)], "v")
    assert volumes.normalisation == "affine" and volumes.brain_dice == pytest.approx(done.brain_dice, abs=1e-4)


def test_the_good_registration_passes_the_check(written):
    done, _ = written
    assert done.passed, done.brain_dice
    (row,) = check_rows("S", [DerivedSeries("2", "T1", done)])
    assert row.passed is True


def test_syn_without_antspyx_fails_the_derivatives_with_how_to_install(subject, tmp_path, monkeypatch):
    nifti, measured = subject
    monkeypatch.setitem(sys.modules, "ants", None)  # `import ants` raises ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'datman-flow\[ants\]'"):
        derive(nifti, measured.reuse, tmp_path, "syn", "test", "abc")
    assert not any(tmp_path.iterdir())
    (row,) = check_rows("S", [DerivedSeries("2", "T1", None, "RuntimeError: qc: {normalisation: syn} needs ANTs")])
    assert row.passed is False and "no derivatives" in row.detail


@pytest.mark.slow
def test_syn_through_ants_writes_the_composite_transform(subject, tmp_path):
    pytest.importorskip("ants", reason="SyN needs antspyx (the datman-flow[ants] extra)")
    nifti, measured = subject
    done = derive(nifti, measured.reuse, tmp_path, "syn", "test", "abc")
    record = json.loads(done.manifest.read_text())
    assert record["normalisation"]["method"] == "syn"
    stem = nifti.name[: -len(".nii.gz")]
    assert (tmp_path / f"{stem}_from-T1w_to-{TEMPLATE_NAME}_mode-image_xfm.h5").stat().st_size > 1000
    assert (tmp_path / f"{stem}_{SPACE}_label-GM_probseg.nii.gz").is_file()
    assert done.brain_dice >= DICE_THRESHOLD


def test_the_mask_and_maps_resampled_in_the_brains_box_equal_a_whole_grid_resampling(subject):
    from datman_flow.qc.derivative_images import resample

    _, measured = subject
    a = measured.reuse
    in_tpl = affine_in_template(a.corrected, a.segmentation, a.affine, a.registration, a.template, with_maps=True)
    vmap = a.registration.voxel_map(a.affine, a.template.affine)
    shape = a.template.brain.shape
    assert np.array_equal(in_tpl.brain, resample(a.segmentation.brain, vmap, shape) > 0.5)
    assert np.allclose(in_tpl.tpms[1], np.clip(resample(a.segmentation.pvms[1], vmap, shape), 0, 1), atol=1e-6)
