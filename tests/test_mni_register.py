"""The affine registration to the MNI152 template (qc/mni_register.py) and the template overlaps
(MRIQC's tpm_overlap_*), checked against a known transform, MRIQC's own fuzzy_jaccard and ANTs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

from datman_flow.qc import anat
from datman_flow.qc.derivatives import dice
from datman_flow.qc.mni_register import Registration, register_affine
from datman_flow.qc.mni_template import TEMPLATE_NAME, load_template, template_folder


def known_affine() -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_euler("xyz", [8, -5, 6], degrees=True).as_matrix() @ np.diag([0.92, 0.95, 0.9])
    matrix[:3, 3] = [4.0, -7.0, 10.0]
    return matrix


def mean_distance(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> float:
    ph = np.c_[points, np.ones(len(points))]
    return float(np.linalg.norm((ph @ a.T - ph @ b.T)[:, :3], axis=1).mean())


def brain_points(step: int = 50) -> np.ndarray:
    tpl = load_template()
    return np.column_stack(np.nonzero(tpl.brain))[::step] @ tpl.affine[:3, :3].T + tpl.affine[:3, 3]


def test_the_template_is_nilearns_2009a_symmetric_with_a_derived_brain_and_csf():
    tpl = load_template()
    assert TEMPLATE_NAME == "MNI152NLin2009aSym"
    assert (template_folder() / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz").is_file()
    assert tpl.t1.shape == tpl.brain.shape == tpl.tpms.shape[1:] == (197, 233, 189)
    assert 1800 < tpl.brain.sum() / 1000 < 2100  # ml, 1 mm voxels
    assert tpl.tpms.min() >= 0 and tpl.tpms.max() <= 1
    assert not tpl.tpms[0][~tpl.brain].any()  # CSF only inside the brain
    assert tpl.brain[98, 120, 100]  # the lateral ventricles are inside
    with pytest.raises(ValueError):
        tpl.t1[0, 0, 0] = 1  # read-only: shared by every caller in the process
    assert load_template() is tpl


def test_a_known_affine_applied_to_the_template_is_recovered_within_a_millimetre():
    tpl = load_template()
    truth = known_affine()
    pull = np.linalg.inv(tpl.affine) @ np.linalg.inv(truth) @ tpl.affine  # subject voxel -> template voxel
    image = ndi.affine_transform(tpl.t1, pull[:3, :3], pull[:3, 3], order=1) * 1000
    brain = ndi.affine_transform(tpl.brain.astype(np.float32), pull[:3, :3], pull[:3, 3], order=1) > 0.5
    found = register_affine(image, brain, tpl.affine, tpl)
    assert mean_distance(found.matrix, truth, brain_points()) < 1.0
    assert found.correlation > 0.95


def test_a_wrong_start_is_caught_by_the_brain_overlap():
    tpl = load_template()
    shifted = np.eye(4)
    shifted[:3, 3] = (0, 40, 0)
    reg = Registration(shifted, 0.0, 0, 0.0)
    vmap = reg.voxel_map(tpl.affine, tpl.affine)
    moved = ndi.affine_transform(tpl.brain.astype(np.float32), vmap[:3, :3], vmap[:3, 3], order=1) > 0.5
    assert dice(moved, tpl.brain) < 0.8 < dice(tpl.brain, tpl.brain)


def mriqc_fuzzy_jaccard():
    """MRIQC 24.0.2's ``fuzzy_jaccard`` (mriqc/interfaces/anatomical.py), loaded on its own."""
    pytest.importorskip("mriqc", reason="the reference is MRIQC 24.0.2's own function (test-only package)")
    import mriqc

    path = Path(mriqc.__file__).parent / "interfaces" / "anatomical.py"
    pytest.importorskip("nipype", reason="MRIQC's interfaces module needs nipype")
    spec = importlib.util.spec_from_file_location("mriqc_anatomical_for_tpm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fuzzy_jaccard


def test_fuzzy_jaccard_is_mriqcs():
    theirs = mriqc_fuzzy_jaccard()
    rng = np.random.default_rng(4)
    maps = rng.random((3, 20, 22, 24)).astype(np.float32) * (rng.random((3, 20, 22, 24)) > 0.4)
    refs = rng.random((3, 20, 22, 24)).astype(np.float32) * (rng.random((3, 20, 22, 24)) > 0.5)
    assert anat.fuzzy_jaccard(maps, refs) == pytest.approx(theirs(list(maps), list(refs)), rel=1e-6)


def test_tpm_overlaps_equal_mriqcs_function_on_the_whole_field_of_view():
    """The box the overlaps are computed in loses nothing: MRIQC's fuzzy_jaccard over the whole
    subject grid (the template maps resampled everywhere) gives the same values."""
    theirs = mriqc_fuzzy_jaccard()
    tpl = load_template()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-100.0, -130.0, -80.0)
    shape = (100, 120, 100)
    truth = np.eye(4)
    truth[:3, 3] = (3.0, -4.0, 5.0)
    reg = Registration(truth, 1.0, 0, 0.0)
    back = reg.inverse_voxel_map(affine, tpl.affine)  # subject voxel -> template voxel
    pvms = np.stack([ndi.affine_transform(tpl.tpms[k], back[:3, :3], back[:3, 3], output_shape=shape, order=0)
                     for k in range(3)])
    pvms = np.clip(pvms + 0.05 * (pvms > 0), 0, 1).astype(np.float32)
    brain = pvms.sum(axis=0) > 0.3
    pvms *= brain
    seg = anat.Segmentation(head=brain, brain=brain, pvms=pvms, labels=np.zeros(shape, np.uint8),
                            bias=np.ones(shape, np.float32), means=(0, 0, 0), sigmas=(0, 0, 0))
    ours = anat.tpm_overlaps(seg, affine, reg, tpl)
    everywhere = [ndi.affine_transform(tpl.tpms[k], back[:3, :3], back[:3, 3], output_shape=shape, order=1,
                                       prefilter=False) for k in range(3)]
    reference = theirs(list(pvms), everywhere)
    assert [ours["tpm_overlap_csf"], ours["tpm_overlap_gm"], ours["tpm_overlap_wm"]] == pytest.approx(reference,
                                                                                                       rel=1e-5)
    assert 0.5 < ours["tpm_overlap_gm"] < 1.0


@pytest.mark.slow
def test_the_affine_agrees_with_ants_on_the_real_mprage(philips_mprage, tmp_path):
    ants = pytest.importorskip("ants", reason="the reference registration is ANTs' (antspyx, test-only here)")
    tpl = load_template()
    analysis = anat.anat_analysis(philips_mprage)
    assert analysis.registration is not None
    brain, affine = analysis.segmentation.brain, analysis.affine
    nib.save(nib.Nifti1Image((analysis.corrected * brain).astype(np.float32), affine), tmp_path / "sub.nii.gz")
    nib.save(nib.Nifti1Image((tpl.t1 * tpl.brain).astype(np.float32), tpl.affine), tmp_path / "tpl.nii.gz")
    found = ants.registration(ants.image_read(str(tmp_path / "tpl.nii.gz")), ants.image_read(str(tmp_path / "sub.nii.gz")),
                              type_of_transform="Affine")
    from datman_flow.qc.transform_files import FLIP

    tx = ants.read_transform(found["fwdtransforms"][0])
    p, c = np.array(tx.parameters), np.array(tx.fixed_parameters)
    lps = np.eye(4)
    lps[:3, :3] = p[:9].reshape(3, 3)
    lps[:3, 3] = p[9:] + c - lps[:3, :3] @ c
    theirs = FLIP @ lps @ FLIP
    assert mean_distance(analysis.registration.matrix, theirs, brain_points(20)) < 2.0  # measured 1.2 mm

    def warped(matrix):
        vmap = np.linalg.inv(affine) @ matrix @ tpl.affine
        return ndi.affine_transform(brain.astype(np.float32), vmap[:3, :3], vmap[:3, 3], output_shape=tpl.brain.shape,
                                    order=1) > 0.5

    ours_mask, theirs_mask = warped(analysis.registration.matrix), warped(theirs)
    assert dice(ours_mask, theirs_mask) > 0.95  # measured 0.975
    assert dice(ours_mask, tpl.brain) > dice(theirs_mask, tpl.brain) - 0.01  # measured 0.923 and 0.925
