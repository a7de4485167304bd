"""What the structural derivatives cost and how well the normalisation agrees with ANTs, on the
Philips MPRAGE (1 mm) of ../shared/dicom.

Run: `.venv/bin/python benchmarks/derivatives.py [--ants] [--nifti converted.nii.gz]`. In one
process, on the same series: the T1w QC as it was before the derivatives (masks, segmentation,
harmonised image, IQMs), then each added step timed alone: the template's loading (once per
process), the affine registration, the template overlaps (tpm_overlap_*), the resampling into
MNI space and the writing of the files and manifest; the ratio of the QC with the derivatives to
the QC without; the process's peak resident memory. With ``--ants`` (antspyx): ANTs' own affine
(antspyx's ``Affine``, Mattes MI) and ``SyN`` timed, and the agreement of the brain masks in MNI
space (Dice with the template's brain mask for each method, Dice between ours and ANTs'), and the
mean distance between where our affine and ANTs' put the template's brain voxels. Also the brain
overlap of deliberately broken registrations, to place the check's threshold. Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.transform import Rotation

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from qc import ARCHIVE, SERIES, convert  # noqa: E402

from datman_flow.qc import anat  # noqa: E402
from datman_flow.qc.derivatives import affine_in_template, dice, write_derivatives  # noqa: E402
from datman_flow.qc.mni_register import register_affine  # noqa: E402
from datman_flow.qc.mni_template import load_template  # noqa: E402
from datman_flow.qc.transform_files import read_itk_affine  # noqa: E402


def timed(figures: dict, name: str, fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    figures[name] = time.perf_counter() - started
    return out


def warped_brain(brain, affine, matrix, template) -> np.ndarray:
    vmap = np.linalg.inv(affine) @ matrix @ template.affine
    return ndi.affine_transform(brain.astype(np.float32), vmap[:3, :3], vmap[:3, 3], output_shape=template.brain.shape,
                                order=1) > 0.5


def broken(matrix: np.ndarray, degrees: float, shift: float) -> np.ndarray:
    out = matrix.copy()
    out[:3, :3] = out[:3, :3] @ Rotation.from_euler("x", degrees, degrees=True).as_matrix()
    out[:3, 3] += (0.0, shift, 0.0)
    return out


def ants_figures(figures: dict, corrected, seg, affine, template, ours: np.ndarray, work: Path) -> None:
    import ants
    import nibabel as nib

    from datman_flow.qc.ants_engine import syn_in_template

    nib.save(nib.Nifti1Image((corrected * seg.brain).astype(np.float32), affine), work / "sub.nii.gz")
    nib.save(nib.Nifti1Image((template.t1 * template.brain).astype(np.float32), template.affine), work / "tpl.nii.gz")
    fixed, moving = ants.image_read(str(work / "tpl.nii.gz")), ants.image_read(str(work / "sub.nii.gz"))
    found = timed(figures, "ants_affine_s", ants.registration, fixed, moving, "Affine")
    tx = ants.read_transform(found["fwdtransforms"][0])
    p, c = np.array(tx.parameters), np.array(tx.fixed_parameters)
    text = (f"Parameters: {' '.join(map(str, p))}\nFixedParameters: {' '.join(map(str, c))}\n")
    theirs = read_itk_affine(text)
    points = np.column_stack(np.nonzero(template.brain))[::20] @ template.affine[:3, :3].T + template.affine[:3, 3]
    ph = np.c_[points, np.ones(len(points))]
    dist = np.linalg.norm((ph @ ours.T - ph @ theirs.T)[:, :3], axis=1)
    figures["affine_distance_mm"] = (float(dist.mean()), float(np.percentile(dist, 95)))
    ours_mask, ants_mask = (warped_brain(seg.brain, affine, m, template) for m in (ours, theirs))
    figures["dice_ants_affine_template"] = dice(ants_mask, template.brain)
    figures["dice_ours_vs_ants_affine"] = dice(ours_mask, ants_mask)
    syn = timed(figures, "syn_s", syn_in_template, corrected, seg, affine, template)
    figures["dice_syn_template"] = dice(syn.brain, template.brain)
    figures["dice_ours_vs_syn"] = dice(ours_mask, syn.brain)


def measure(nifti: Path, with_ants: bool, work: Path) -> dict:
    figures: dict = {}
    started = time.perf_counter()
    inputs = anat.anat_inputs(nifti)
    corrected = anat.harmonised(inputs.raw, inputs.seg)
    anat.iqms(inputs, "mriqc24", corrected)
    figures["qc_without_s"] = time.perf_counter() - started
    seg = inputs.seg
    affine = anat.canonical_image(nifti).affine
    template = timed(figures, "template_s", load_template)
    reg = timed(figures, "register_s", register_affine, corrected, seg.brain, affine, template)
    figures["tpm_overlap"] = timed(figures, "tpm_overlap_s", anat.tpm_overlaps, seg, affine, reg, template)
    in_tpl = timed(figures, "resample_s", affine_in_template, corrected, seg, affine, reg, template)
    done = timed(figures, "write_s", write_derivatives, nifti, work / "derivatives", seg, corrected, in_tpl, template,
                 "benchmark", "-")
    figures["dice_ours_template"] = done.brain_dice
    figures["morphometry"] = done.morphometry
    figures["files_mb"] = sum(p.stat().st_size for p in done.files) / 1e6
    figures["broken"] = {(deg, shift): dice(warped_brain(seg.brain, affine, broken(reg.matrix, deg, shift), template),
                                            template.brain)
                         for deg, shift in ((5, 0), (10, 5), (15, 10), (20, 15), (30, 20), (0, 30))}
    figures["added_s"] = sum(figures[k] for k in ("register_s", "tpm_overlap_s", "resample_s", "write_s"))
    figures["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    if with_ants:
        ants_figures(figures, corrected, seg, affine, template, reg.matrix, work)
    return figures


def report(f: dict, threads: str) -> str:
    without, added = f["qc_without_s"], f["added_s"]
    lines = [f"Philips MPRAGE (1 mm), one process, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
             f"at the end; ITK threads: {threads}\n", "| step | seconds |", "|---|---|",
             f"| T1w QC without derivatives | {without:.1f} |",
             f"| template loaded (once per process) | {f['template_s']:.1f} |",
             f"| affine registration | {f['register_s']:.1f} |",
             f"| tpm_overlap_* | {f['tpm_overlap_s']:.1f} |",
             f"| resampling into MNI (T1, mask, 1 mm) | {f['resample_s']:.1f} |",
             f"| writing 9 files + manifest ({f['files_mb']:.0f} MB) | {f['write_s']:.1f} |",
             f"| **added by the derivatives** | **{added:.1f}** (+{added / without:.0%}; "
             f"{added + f['template_s']:.1f} with the template's loading) |",
             f"| peak resident memory | {f['peak_gb']:.2f} GB |"]
    lines += ["", f"brain overlap (Dice) with the template's brain mask, our affine: {f['dice_ours_template']:.3f}",
              "tpm_overlap: " + ", ".join(f"{k[12:]} {v:.3f}" for k, v in f["tpm_overlap"].items()),
              f"morphometry: {f['morphometry']}",
              "broken registrations (rotation about x, shift along y) -> Dice: " +
              ", ".join(f"{d} deg/{s} mm {v:.3f}" for (d, s), v in f["broken"].items())]
    if "syn_s" in f:
        mean, p95 = f["affine_distance_mm"]
        lines += ["", "| with ANTs | |", "|---|---|", f"| ANTs affine | {f['ants_affine_s']:.1f} s |",
                  f"| ANTs SyN (registration + resampling) | {f['syn_s']:.1f} s |",
                  f"| our affine vs ANTs' affine: template brain voxels | mean {mean:.2f} mm, p95 {p95:.2f} mm |",
                  f"| Dice, our affine vs ANTs' affine brain masks in MNI | {f['dice_ours_vs_ants_affine']:.3f} |",
                  f"| Dice with the template brain: ANTs affine / SyN | {f['dice_ants_affine_template']:.3f} / "
                  f"{f['dice_syn_template']:.3f} |",
                  f"| Dice, our affine vs SyN brain masks in MNI | {f['dice_ours_vs_syn']:.3f} |"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ants", action="store_true", help="also ANTs' affine and SyN (needs antspyx)")
    parser.add_argument("--nifti", type=Path, help="an already converted MPRAGE instead of converting it")
    parser.add_argument("--archive", type=Path, default=ARCHIVE, help="the Philips archive (philips_ingenia.tar.gz)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datman-derivatives-") as tmp:
        work = Path(tmp)
        nifti = args.nifti
        if nifti is None:
            if not args.archive.exists():
                print(f"{args.archive} not found: the benchmark needs ../shared/dicom", file=sys.stderr)
                return 2
            number, expected = SERIES["anat"]
            with tarfile.open(args.archive) as tar:
                members = [m for m in tar.getmembers() if Path(m.name).name.startswith(f"{number}_")]
                tar.extractall(work, members=members, filter="data")
            nifti = convert(work / "philips_ingenia" / "In", number, expected, work)
        figures = measure(nifti, args.ants, work)
    print(report(figures, os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "all cores")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
