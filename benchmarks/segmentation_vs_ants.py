"""datman-flow's built-in tissue segmentation against ANTs N4 + Atropos on the real T1s of ../shared/dicom.

Run: `PYTHONPATH=. .venv/bin/python benchmarks/segmentation_vs_ants.py [--work DIR] [--convention NAME] [--dicom DIR]`
(needs the `antspyx` package: the `ants` extra). The real T1s (the Philips Ingenia MPRAGE, 1 mm,
256x256x170; the Siemens XA30 T1w series 5 and 6, 2 mm) are unpacked and converted with the
project's dcm2niix wrapper into DIR (a temporary folder by default). Each side runs in a fresh
process, which reports its time and peak resident memory:

* datman-flow: ``anat.load_t1w``, ``anat.rotation_mask``, ``common.head_mask``, ``segment.segment_t1w``;
* ANTs, inside datman-flow's brain mask: N4 (MRIQC 24's settings: 5 x 50 iterations, tolerance
  1e-7, shrink 4, B-spline distance 200 mm) on the raw image, then Atropos on the N4-corrected
  image (3 classes, ``i='kmeans[3]'``, ``m='[0.1,1x1x1]'``, ``c='[5,0]'``), classes ordered by mean
  intensity; with Atropos' fixed seed (``r=0``, i.e. ``--use-random-seed 0``; without it two runs
  differ by up to 0.13 in a posterior) on 2 threads, so that runs repeat. Atropos also runs,
  untimed, on datman-flow's own corrected image.

Reported per image, for three pairs of maps, each pair on one corrected image so that only the
classes differ: datman-flow's maps against Atropos' after N4 (both on datman-flow's corrected
image: ``anat._metrics`` with a ``segment.Segmentation`` of Atropos' posteriors and datman-flow's
field), against Atropos run on datman-flow's corrected image, and datman-flow's classifier
(``tissue_classes.classify``) run on N4's corrected image against Atropos after N4 (the ANTs
chain, N4's field). For each: Dice per class of the hard labels, ``icvs`` of both, and the IQMs
(cjv, cnr, snr_*, icvs) for every convention of ``settings.CONVENTIONS`` (or the one given).
The targets of issue 12 (1 mm: Dice >= 0.90 GM/WM, >= 0.85 CSF and icvs within 0.04 of
Atropos after N4; cjv, cnr within 10 %) are checked on the 1 mm image.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "dicom"
# name -> (archive, series folder or file prefix, expected files)
IMAGES = {
    "philips_mprage_1mm": ("philips_ingenia", "1301_", 170),
    "xa30_t1w_s5_2mm": ("siemens_xa30", "5_anat-T1w_acq-tfl", 1),
    "xa30_t1w_s6_2mm": ("siemens_xa30", "6_anat-T1w_acq-tfl", 1),
}
TARGETS_ON = "philips_mprage_1mm"
DICE_TARGET = {"csf": 0.85, "gm": 0.90, "wm": 0.90}
ICVS_TOL, IQM_REL_TOL = 0.04, 0.10
IQMS = ("cjv", "cnr", "snr_csf", "snr_gm", "snr_wm", "snr_total", "icvs_csf", "icvs_gm", "icvs_wm")
SEED, THREADS = 42, 2  # ANTS_RANDOM_SEED (N4, and any ANTs step that reads it), ITK threads


def convert(work: Path, name: str, dicom: Path) -> Path:
    from datman_flow.dicom.convert import convert_series, find_dcm2niix

    archive, series, expected = IMAGES[name]
    root = work / archive
    if not root.is_dir():
        with tarfile.open(dicom / f"{archive}.tar.gz") as tar:
            tar.extractall(work, filter="data")
    out = work / "nii" / name
    existing = sorted(out.glob("*.nii*")) if out.is_dir() else []
    if existing:
        return existing[0]
    source = root / "In" / series
    if not source.is_dir():  # a flat folder of single-slice files: link the series' files
        source = work / "series" / name
        source.mkdir(parents=True, exist_ok=True)
        for path in sorted((root / "In").glob(f"{series}*.dcm")):
            if not (source / path.name).exists():
                os.symlink(path, source / path.name)
    out.mkdir(parents=True, exist_ok=True)
    outcome = convert_series(find_dcm2niix(), source, out, name, expected_files=expected)
    if outcome.status != "converted":
        raise SystemExit(f"conversion of {name} failed: {outcome.message}")
    return Path(str(outcome.nifti_path))


# --- the two sides, each in its own process ------------------------------------------------------


def run_builtin(nifti: Path, out: Path) -> dict:
    from datman_flow.qc import common
    from datman_flow.qc.anat import load_t1w, rotation_mask
    from datman_flow.qc.segment import segment_t1w

    raw, zooms = load_t1w(nifti)
    np.clip(raw, 0.0, None, out=raw)
    rot = rotation_mask(raw)
    head = common.head_mask(raw, zooms) & ~rot
    started = time.perf_counter()
    seg = segment_t1w(raw, zooms, head=head)
    seconds = time.perf_counter() - started
    np.savez(out, head=seg.head, brain=seg.brain, pvms=seg.pvms, labels=seg.labels, bias=seg.bias,
             means=np.array(seg.means), sigmas=np.array(seg.sigmas))
    return {"seconds": seconds}


def atropos(ants, image: np.ndarray, brain: np.ndarray, zooms) -> tuple[np.ndarray, np.ndarray]:
    """Atropos' posteriors (3, ...) ordered CSF < GM < WM by mean intensity, 0 outside the brain, and labels."""
    mask = ants.from_numpy(brain.astype(np.float32), spacing=zooms)
    result = ants.atropos(a=ants.from_numpy(image, spacing=zooms), x=mask, i="kmeans[3]", m="[0.1,1x1x1]", c="[5,0]",
                          r=0)  # Atropos' --use-random-seed 0: its fixed seed
    posteriors = np.stack([p.numpy() for p in result["probabilityimages"]]).astype(np.float32)
    posteriors[:, ~brain] = 0.0
    hard = np.argmax(posteriors, axis=0)
    posteriors = posteriors[np.argsort([float(image[brain & (hard == k)].mean()) for k in range(3)])]
    return posteriors, np.where(brain, np.argmax(posteriors, axis=0) + 1, 0).astype(np.uint8)


def run_ants(nifti: Path, out: Path, builtin: Path) -> dict:
    """N4 + Atropos in datman-flow's brain mask (timed: the ANTs chain), then Atropos alone on
    datman-flow's own bias-corrected image (the classifier alone, untimed)."""
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(THREADS)
    os.environ["ANTS_RANDOM_SEED"] = str(SEED)
    import ants

    from datman_flow.qc.anat import load_t1w

    raw, zooms = load_t1w(nifti)
    np.clip(raw, 0.0, None, out=raw)
    own = np.load(builtin)
    brain = own["brain"]
    started = time.perf_counter()
    field = ants.n4_bias_field_correction(ants.from_numpy(raw, spacing=zooms),
                                          mask=ants.from_numpy(brain.astype(np.float32), spacing=zooms),
                                          shrink_factor=4, spline_param=200,
                                          convergence={"iters": [50] * 5, "tol": 1e-7}, return_bias_field=True)
    n4_field = field.numpy().astype(np.float32)
    n4_seconds = time.perf_counter() - started
    pvms, labels = atropos(ants, raw / np.maximum(n4_field, 1e-6), brain, zooms)
    seconds = time.perf_counter() - started
    peak = peak_gb()
    pvms_own, labels_own = atropos(ants, (raw / own["bias"]).astype(np.float32), brain, zooms)
    np.savez(out, pvms=pvms, labels=labels, n4_field=n4_field, pvms_own=pvms_own, labels_own=labels_own)
    return {"seconds": seconds, "n4_seconds": n4_seconds, "peak_gb": peak}


def in_child(side: str, nifti: Path, out: Path, builtin: Path | None = None) -> dict:
    """Run one side in a fresh interpreter; its time and peak resident memory."""
    command = [sys.executable, str(Path(__file__).resolve()), "--side", side, str(nifti), str(out)]
    if builtin is not None:
        command.append(str(builtin))
    import datman_flow

    env = os.environ | {"PYTHONPATH": str(Path(datman_flow.__file__).resolve().parents[1])}  # the parent's package
    with tempfile.TemporaryDirectory(prefix="datman-seg-child-") as scratch:
        # antspyx's ants.atropos leaves its posteriors (antsr*prob*.nii.gz) in the temporary folder
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env | {"TMPDIR": scratch})
    if done.returncode != 0:
        raise SystemExit(f"{side} on {nifti.name} failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_gb() -> float:
    """This process's peak resident memory: VmHWM (reset by exec, unlike ru_maxrss, which on Linux
    keeps the parent's high-water mark at the fork)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def side_main(argv: list[str]) -> int:
    side, nifti, out = argv[0], Path(argv[1]), Path(argv[2])
    figures = run_builtin(nifti, out) if side == "builtin" else run_ants(nifti, out, Path(argv[3]))
    figures.setdefault("peak_gb", peak_gb())
    print(json.dumps(figures))
    return 0


# --- the comparison ------------------------------------------------------------------------------


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / total if total else float("nan")


PAIRS = {  # datman-flow's maps against Atropos' (both on one corrected image), three ways
    "n4_maps": "datman-flow | Atropos after N4, on datman-flow's image",
    "same_image": "datman-flow | Atropos on datman-flow's image",
    "n4_image": "datman-flow's classes on N4's image | Atropos after N4 (the ANTs chain)",
}


def classify_on(image: np.ndarray, brain: np.ndarray, zooms) -> np.ndarray:
    """datman-flow's tissue maps of an already corrected image (as ``segment_t1w`` draws them)."""
    from datman_flow.qc.segment import fit_mixture
    from datman_flow.qc.tissue_classes import classify

    return classify(image, brain, zooms, fit_mixture(image[brain])[0])[0]


def compare(nifti: Path, builtin_npz: Path, ants_npz: Path, conventions: list[str]) -> dict:
    from datman_flow.qc.anat import AnatInputs, artifact_mask, hat_mask, iqms, load_t1w, rotation_mask
    from datman_flow.qc.segment import CLASSES, Segmentation

    raw, zooms = load_t1w(nifti)
    np.clip(raw, 0.0, None, out=raw)
    b, a = np.load(builtin_npz), np.load(ants_npz)
    own = Segmentation(head=b["head"], brain=b["brain"], pvms=b["pvms"], labels=b["labels"], bias=b["bias"],
                       means=tuple(b["means"]), sigmas=tuple(b["sigmas"]))
    n4_field = np.where(own.brain, a["n4_field"], 1.0).astype(np.float32)  # N4 ran in the brain only
    n4_field /= np.float32(np.exp(np.log(n4_field[own.brain]).mean()))

    def seg(pvms: np.ndarray, bias: np.ndarray) -> Segmentation:
        labels = np.where(own.brain, np.argmax(pvms, axis=0) + 1, 0).astype(np.uint8)
        return Segmentation(head=own.head, brain=own.brain, pvms=pvms, labels=labels, bias=bias, means=own.means,
                            sigmas=own.sigmas)

    on_n4 = classify_on((raw / n4_field).astype(np.float32), own.brain, zooms)
    pairs = {"n4_maps": (own, seg(a["pvms"], own.bias)), "same_image": (own, seg(a["pvms_own"], own.bias)),
             "n4_image": (seg(on_n4, n4_field), seg(a["pvms"], n4_field))}
    rot = rotation_mask(raw)
    hat22 = hat_mask(own.head, own.brain, rot)
    art = artifact_mask(raw, hat22, own.head)
    hats = {"mriqc22": hat22, "mriqc24": hat_mask(own.head, own.brain, None)}  # as anat.anat_inputs draws them
    out: dict = {"shape": list(raw.shape), "zooms": list(zooms),
                 "brain_ml": float(own.brain.sum() * np.prod(zooms) / 1000.0), "pairs": {}}
    for pair, (ours, theirs) in pairs.items():
        row: dict = {"dice": {c: dice(ours.labels == k + 1, theirs.labels == k + 1) for k, c in enumerate(CLASSES)}}
        for side, s in (("builtin", ours), ("atropos", theirs)):
            totals = s.pvms.sum(axis=(1, 2, 3), dtype=np.float64)
            row[f"icvs_{side}"] = {c: float(totals[k] / totals.sum()) for k, c in enumerate(CLASSES)}
            row[f"iqms_{side}"] = {}
            for convention in conventions:
                m = iqms(AnatInputs(raw, zooms, rot, own.head, s, hats[convention], art), convention)
                row[f"iqms_{side}"][convention] = {key: float(m[key]) for key in IQMS}
        out["pairs"][pair] = row
    return out


def pct(x: float, ref: float) -> float:
    return 100.0 * (x - ref) / abs(ref) if ref else float("nan")


def triple(values: dict) -> str:
    return " / ".join(f"{values[c]:.3f}" for c in ("csf", "gm", "wm"))


def report(figures: dict) -> list[str]:
    """Markdown tables, and the list of missed targets (on the 1 mm image)."""
    missed: list[str] = []
    print("\nSegmentation agreement (Dice of the hard labels; icvs from the maps)\n")
    print("| image | voxels (mm) | brain ml | maps compared | Dice CSF / GM / WM | icvs datman-flow | icvs Atropos | "
          "max abs. icvs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for name, f in figures.items():
        for pair, label in PAIRS.items():
            row = f["pairs"][pair]
            d, ib, ia = row["dice"], row["icvs_builtin"], row["icvs_atropos"]
            worst = max(abs(ib[c] - ia[c]) for c in ib)
            print(f"| {name} | {'x'.join(map(str, f['shape']))} ({f['zooms'][0]:.2g}) | {f['brain_ml']:.0f} | "
                  f"{label} | {triple(d)} | {triple(ib)} | {triple(ia)} | {worst:.3f} |")
            if name == TARGETS_ON and pair == "n4_maps":
                missed += [f"Dice {c} {d[c]:.3f} < {t}" for c, t in DICE_TARGET.items() if d[c] < t]
                missed += [f"icvs_{c} off by {abs(ib[c] - ia[c]):.3f}" for c in ib if abs(ib[c] - ia[c]) > ICVS_TOL]
    print("\nTime and peak memory (each side in a fresh process, 2 threads)\n")
    print("| image | datman-flow segment_t1w s / GB | ANTs N4 + Atropos s (N4 s) / GB |")
    print("|---|---|---|")
    for name, f in figures.items():
        t_b, t_a = f["time"]["builtin"], f["time"]["ants"]
        print(f"| {name} | {t_b['seconds']:.1f} / {t_b['peak_gb']:.2f} | "
              f"{t_a['seconds']:.1f} ({t_a['n4_seconds']:.1f}) / {t_a['peak_gb']:.2f} |")
    conventions = next(iter(next(iter(figures.values()))["pairs"].values()))["iqms_builtin"]
    for convention in conventions:
        print(f"\nIQMs, convention {convention}: each pair of maps on one corrected image (datman-flow | Atropos: "
              "diff is datman-flow's relative to Atropos', absolute for icvs)\n")
        print("| image | metric | " + " | ".join(f"{label} | diff" for label in PAIRS.values()) + " |")
        print("|---|---|" + "---|---|---|" * len(PAIRS))
        for name, f in figures.items():
            for key in IQMS:
                cells = []
                for pair in PAIRS:
                    row = f["pairs"][pair]
                    ours, theirs = row["iqms_builtin"][convention][key], row["iqms_atropos"][convention][key]
                    diff = f"{ours - theirs:+.3f}" if key.startswith("icvs") else f"{pct(ours, theirs):+.1f} %"
                    cells.append(f"{ours:.3f} | {theirs:.3f} | {diff}")
                    if name == TARGETS_ON and key in ("cjv", "cnr") and abs(pct(ours, theirs)) > 100 * IQM_REL_TOL:
                        missed.append(f"{convention} {key} {pct(ours, theirs):+.1f} % ({PAIRS[pair]})")
                print(f"| {name} | {key} | {' | '.join(cells)} |")
    return missed


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--side":
        return side_main(sys.argv[2:])
    from datman_flow.qc.settings import CONVENTIONS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="folder for the unpacked archives, NIfTIs and maps (kept)")
    parser.add_argument("--convention", choices=CONVENTIONS, action="append",
                        help="MRIQC convention of the IQMs (repeatable; default: every one)")
    parser.add_argument("--images", default=",".join(IMAGES), help=f"comma-separated, of: {', '.join(IMAGES)}")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--dicom", type=Path, default=SHARED, help=f"the archives' folder (default {SHARED})")
    parser.add_argument("--report", type=Path, help="only print the tables of figures saved earlier with --json")
    args = parser.parse_args()
    if args.report:
        return print_report(json.loads(args.report.read_text()))
    if importlib.util.find_spec("ants") is None:
        print("antspyx is not installed: `pip install antspyx` (the datman-flow[ants] extra) to run this "
              "benchmark", file=sys.stderr)
        return 2
    if not args.dicom.is_dir():
        print(f"{args.dicom} not found: the benchmark needs ../shared/dicom (or --dicom)", file=sys.stderr)
        return 2
    names = [n for n in args.images.split(",") if n]
    unknown = sorted(set(names) - set(IMAGES))
    if unknown:
        parser.error(f"unknown image(s): {', '.join(unknown)}")
    conventions = args.convention or list(CONVENTIONS)
    with tempfile.TemporaryDirectory(prefix="datman-seg-bench-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        figures = {}
        for name in names:
            nifti = convert(work, name, args.dicom)
            maps = work / "maps"
            maps.mkdir(exist_ok=True)
            builtin, ants_maps = maps / f"{name}_builtin.npz", maps / f"{name}_ants.npz"
            timing = {"builtin": in_child("builtin", nifti, builtin)}
            timing["ants"] = in_child("ants", nifti, ants_maps, builtin)
            figures[name] = compare(nifti, builtin, ants_maps, conventions) | {"time": timing}
            print(f"{name}: done", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return print_report(figures)


def print_report(figures: dict) -> int:
    missed = report(figures)
    print(f"\nTargets on {TARGETS_ON}: " + ("all met" if not missed else "missed: " + "; ".join(missed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
