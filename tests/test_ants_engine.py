"""The ANTs engine of the T1w QC (`qc: {anat_engine: ants}`): N4 + Atropos in the built-in
engine's masks, on synthetic heads of known tissue fractions and on the real Philips MPRAGE;
and the clear failure, recorded by the QC step, when antspyx is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from peak_memory import PEAK_MB
from test_qc_anat import head_phantom

from datman_flow.pipeline.qc import measure_series
from datman_flow.qc import common
from datman_flow.qc.anat import intensity_clip, load_t1w, rotation_mask
from datman_flow.qc.ants_engine import atropos_posteriors, n4_field, segment_t1w_ants
from datman_flow.qc.measure import analyse, companion, mriqc_record, picture
from datman_flow.qc.segment import segment_t1w
from datman_flow.qc.settings import QcSettings
from datman_flow.records import SeriesRecord

REPO = Path(__file__).resolve().parents[1]
ANTS = QcSettings(anat_engine="ants")
NEEDS_ANTS = "the ANTs engine needs antspyx (pip install 'datman-flow[ants]')"
MISSING = "qc: {anat_engine: ants} needs ANTs: pip install 'datman-flow[ants]' (antspyx)"
TISSUES = ("csf", "gm", "wm")


@pytest.fixture(scope="module")
def small():
    """A 3 mm synthetic head (64x75x50) through the engine: (raw, zooms, head, Segmentation)."""
    pytest.importorskip("ants", reason=NEEDS_ANTS)
    raw, zooms = load_t1w(head_phantom(10.0, spacing=3.0)[0])
    np.clip(raw, 0.0, None, out=raw)
    head = common.head_mask(raw, zooms) & ~rotation_mask(raw)
    return raw, zooms, head, segment_t1w_ants(raw, zooms, head=head)


@pytest.mark.slow
def test_the_engine_keeps_the_builtin_masks_and_gives_maps_a_field_and_labels(small):
    raw, zooms, head, seg = small
    builtin = segment_t1w(raw, zooms, head=head)
    assert np.array_equal(seg.brain, builtin.brain) and np.array_equal(seg.head, builtin.head)
    brain = seg.brain
    assert seg.pvms.shape == (3, *raw.shape) and seg.pvms.dtype == np.float32
    assert not seg.pvms[:, ~brain].any()
    np.testing.assert_allclose(seg.pvms[:, brain].sum(axis=0), 1.0, atol=1e-4)
    assert not seg.labels[~brain].any()
    assert np.array_equal(seg.labels[brain], np.argmax(seg.pvms[:, brain], axis=0) + 1)
    assert set(np.unique(seg.labels[brain])) == {1, 2, 3}
    assert np.all(np.isfinite(seg.bias)) and seg.bias.min() > 0
    assert abs(float(np.log(seg.bias[brain]).mean())) < 1e-4  # geometric mean 1 over the brain
    assert seg.bias[0, 0, 0] == 1.0 and seg.bias[-1, -1, -1] == 1.0  # 1 far from the brain
    assert seg.means[0] < seg.means[1] < seg.means[2] and min(seg.sigmas) > 0


@pytest.mark.slow
def test_n4_and_atropos_are_repeatable_and_leave_no_files(small, tmp_path, monkeypatch):
    ants = pytest.importorskip("ants", reason=NEEDS_ANTS)
    raw, zooms, _, seg = small
    clipped = intensity_clip(raw)
    assert np.array_equal(n4_field(clipped, seg.brain, zooms), n4_field(clipped, seg.brain, zooms))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where tempfile (and antspyx) write
    image = clipped / seg.bias
    first = atropos_posteriors(image, seg.brain, zooms)
    assert list(tmp_path.iterdir()) == []
    assert np.array_equal(first, atropos_posteriors(image, seg.brain, zooms))
    # antspyx's own ants.atropos leaves its posteriors in the temp folder: why the engine calls Atropos itself
    ants.atropos(a=ants.from_numpy(image, spacing=zooms), x=ants.from_numpy(seg.brain.astype(np.float32), spacing=zooms),
                 i="KMeans[3]", m="[0.01,1x1x1]", c="[5,0.001]")
    assert len(list(tmp_path.glob("*prob*.nii.gz"))) == 3


@pytest.fixture(scope="module")
def head_qc(tmp_path_factory):
    """The 1.5 mm synthetic head (noise sigma 10) measured by the QC entry point with the ANTs
    engine: (nifti, true CSF/GM/WM fractions, Measured)."""
    pytest.importorskip("ants", reason=NEEDS_ANTS)
    img, truth, _ = head_phantom(10.0)
    nifti = tmp_path_factory.mktemp("ants_head") / "head_T1.nii.gz"
    nib.save(img, nifti)
    return nifti, truth, analyse("anat", nifti, ANTS)


@pytest.mark.slow
def test_synthetic_head_tissue_fractions_and_finite_metrics(head_qc):
    _, truth, measured = head_qc
    m = measured.result.metrics
    assert all(np.isfinite(v) for v in m.values()), [k for k, v in m.items() if not np.isfinite(v)]
    for k, tissue in enumerate(TISSUES):  # measured: 0.193 / 0.317 / 0.489 against 0.200 / 0.303 / 0.497
        assert m[f"icvs_{tissue}"] == pytest.approx(truth[k], abs=0.03), tissue
    assert m["snr_wm"] > m["snr_gm"] > m["snr_csf"] > 1.0 and m["cnr"] > 1.0
    assert m["inu_med"] == pytest.approx(1.0, abs=0.02)


@pytest.mark.slow
def test_picture_and_provenance_name_the_engine(head_qc, tmp_path):
    nifti, _, measured = head_qc
    assert measured.result.engine == "ants"
    png = picture("anat", nifti, measured, tmp_path / "head_qc.png")
    assert png.exists() and png.stat().st_size > 10_000
    settings = mriqc_record(measured.result, nifti)["provenance"]["settings"]
    assert settings["anat_engine"] == "ants"
    assert settings["implementation"] == "ANTs N4 + Atropos (antspyx)"


def test_without_antspyx_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ants", None)  # `import ants` now raises ImportError
    with pytest.raises(RuntimeError) as caught:
        segment_t1w_ants(np.ones((8, 8, 8), np.float32), (1.0, 1.0, 1.0))
    assert str(caught.value) == MISSING


def test_without_antspyx_the_qc_step_records_the_series_as_failed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ants", None)
    nifti = tmp_path / "SPN01_CMH_0001_01_01_T1_02_t1.nii.gz"
    nib.save(head_phantom(10.0, spacing=3.0)[0], nifti)
    record = SeriesRecord(session="SPN01_CMH_0001_01_01", scan_id="2", series_number="2", description="t1",
                          download_status="complete", tag="T1", nifti_path=str(nifti), conversion_status="converted")
    done = measure_series(record, "anat", ANTS)
    assert (done.status, done.message, done.result) == ("failed", f"RuntimeError: {MISSING}", None)
    assert not companion(nifti, "_qc.json").exists() and not companion(nifti, "_qc.png").exists()


# --- the real Philips MPRAGE ------------------------------------------------------------------

CHILD = f"""
import json, os, sys, tempfile
from datman_flow.qc.anat import anat_analysis
from datman_flow.qc.settings import QcSettings
metrics = anat_analysis(sys.argv[1], QcSettings(anat_engine="ants")).result.metrics
print(json.dumps({{"metrics": metrics, "peak_mb": {PEAK_MB},
                  "left": os.listdir(tempfile.gettempdir())}}))
"""


@pytest.fixture(scope="module")
def mprage(philips_mprage) -> Path:
    return philips_mprage


def test_real_mprage_gives_mriqc_plausible_values_within_2_gb(mprage, tmp_path):
    """In a fresh interpreter (its own peak RSS), 2 ITK threads, its own empty temp folder."""
    pytest.importorskip("ants", reason=NEEDS_ANTS)
    env = dict(os.environ, TMPDIR=str(tmp_path), ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="2",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", CHILD, str(mprage)], capture_output=True, text=True, env=env,
                          cwd=REPO, check=False, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    m = out["metrics"]
    print(f"\nMPRAGE, ANTs engine: peak RSS {out['peak_mb']:.0f} MB;",
          json.dumps({k: round(v, 4) for k, v in sorted(m.items()) if not k.startswith("summary")}))
    assert out["peak_mb"] < 2048 and out["left"] == []
    # Bounds that hold under both MRIQC conventions (mriqc24's weighted statistics move cjv, cnr, snr)
    assert 0.15 <= m["cjv"] <= 0.65 and 1.5 <= m["cnr"] <= 8.0
    assert 0.4 <= m["efc"] <= 0.8 and 0.45 <= m["wm2max"] <= 0.85
    assert sum(m[f"icvs_{t}"] for t in TISSUES) == pytest.approx(1.0)
    for tissue in TISSUES:  # Atropos: 0.276 / 0.381 / 0.343
        assert 0.2 <= m[f"icvs_{tissue}"] <= 0.5, tissue
    assert m["snr_wm"] > m["snr_gm"] > m["snr_csf"] > 1.0
    assert m["inu_med"] == pytest.approx(1.0, abs=0.05) and 0.1 <= m["inu_range"] <= 0.8
    assert m["qi_1"] < 0.01
