"""Validate the SVCA4 reference region (tspo_bids.pet.svca) on simulated [11C]-(R)-PK11195 brains.

Prints, per voxel-noise level (COV 10/20/30 %) and seed, the number of selected voxels, their purity
(share of true reference voxels: >= 90 % non-binding grey matter in the PET signal) and the maximum
relative error of the reference TAC after 2 min, for three GMfrac solvers:

- ``published``: unconstrained NNLS and ``b_GM / sum(b)`` (Turkheimer 2007; sum_to_one=False);
- ``sum1``: fractions constrained to sum to one (the default);
- ``sum1+bg``: sum to one plus the zero-activity background class (recommended).

Two brains: ``mixture`` = the voxel population of tests/pet/test_svca.py (partial-volume mixtures of GM,
WM, thalamus, blood; 20 % of cortex binding with BPND 0.3 in the patient); ``spatial`` = a 2 mm grid
with a thick GM shell, WM core, thalamus, a vessel and binding cortical patches, blurred by a 5 mm PSF,
white voxel noise after blurring (as the project's phantom), classes from 3 controls processed the same
way. Acceptance (issue 4): purity >= 0.90 and TAC error <= 0.03.

Usage: /work/venv/bin/python benchmarks/validate_svca.py [--seeds 5 11 12] [--no-spatial]

``--test-bids OUT_SVCA [--work WORK]`` instead reports the pipeline's SVCA reference on data/test_bids
(``OUT_SVCA``: the output of ``participant --ref-region svca``, as tests/e2e/test_svca_e2e.py makes it): per
session the voxels, purity and TAC errors after 2 min against the phantom truth (``pvcmax``: the largest error
of the GTM-corrected reference TAC when ``OUT_SVCA`` was made with ``--pvc``, else n/a); the largest error of the
perfect pipeline's own reference TAC (``perfect``: true reference mask, true transform, noise-free PET with the
5 mm PSF); the true CSF/WM content of the SVCA voxels and of that true reference mask; with the participant work
directory ``WORK`` also the oracle selection (true cerebellar GM p > 0.9, eroded 0-2 voxels, on the
pipeline's PET in T1w space), i.e. the best any voxel selection can do without partial-volume correction.
``--bids DIR`` reports on another phantom made by ``tspo-bids-simulate`` (its ``derivatives/phantom-truth``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pet"))
import test_svca as sim  # noqa: E402  (the test's simulated tissues and mixture brain)

from tspo_bids.kinetics.simulation import add_noise, scale_for_cov  # noqa: E402
from tspo_bids.pet.svca import (  # noqa: E402
    SvcaControl,
    background_class,
    build_svca_classes,
    gm_fraction,
    normalise_tacs,
)

TIMING = sim.TIMING
LATE = TIMING.start_min >= 2.0
SOLVERS = {"published": (False, False), "sum1": (True, False), "sum1+bg": (True, True)}
VOXEL_MM = 2.0


def _score(raw, gm_prob, true_reference, classes, solver):
    sum_to_one, with_background = SOLVERS[solver]
    fraction = gm_fraction(normalise_tacs(raw), classes, sum_to_one=sum_to_one,
                           background=background_class(raw) if with_background else None)
    mask = (fraction > 0.9) & (gm_prob > 0.9)
    if not mask.any():
        return 0, float("nan"), float("nan")
    tac = raw[:, mask].mean(axis=1)
    error = np.abs(tac[LATE] / sim.CURVES["gmref"][LATE] - 1.0).max()
    return int(mask.sum()), float(true_reference[mask].mean()), float(error)


def mixture_case(seed: int, cov: float):
    rng = np.random.default_rng(seed)
    classes = sim.control_classes(rng, cov=cov)
    subject = sim.simulate_brain(rng, patient=True, cov=cov, binding_fraction=0.2)
    return {name: _score(subject.raw, subject.gm_prob, subject.true_reference, classes, name) for name in SOLVERS}


def spatial_brain(rng: np.random.Generator, patient: bool, cov: float, psf_mm: float = 5.0, n: int = 44) -> dict:
    grid = np.indices((n, n, n)).astype(float) - (n - 1) / 2
    radius = np.sqrt((grid**2).sum(0)) * VOXEL_MM
    field = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 4)
    field /= field.std()
    outer = 40 + 2.5 * field
    brain = radius < outer
    gm = brain & (radius > outer - 16 - 2 * field)
    thalamus = np.sqrt(((grid - np.array([0, 3, 0])[:, None, None, None]) ** 2).sum(0)) * VOXEL_MM < 9
    vessel = brain & (np.abs(grid[0]) * VOXEL_MM < 1.5) & (np.abs(grid[1] - 10) * VOXEL_MM < 1.5)
    binding = np.zeros_like(gm)
    if patient:
        patches = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 5)
        binding = gm & (patches > 0.6 * patches.std())
    labels = {"gmref": gm & ~binding & ~vessel, "gmbinding": binding & ~vessel, "wm": brain & ~gm & ~thalamus & ~vessel,
              "thalamus": thalamus & ~vessel, "blood": vessel}
    sigma = psf_mm / 2.3548 / VOXEL_MM
    fractions = {k: ndimage.gaussian_filter(v.astype(float), sigma) for k, v in labels.items()}
    clean = sum(fractions[k][brain][None, :] * sim.CURVES[k][:, None] for k in labels)  # (frames, brain voxels)
    raw = add_noise(clean, TIMING, scale_for_cov(sim.CURVES["gmref"], TIMING, cov), rng)
    return {"raw": raw, "gm_prob": (labels["gmref"] | labels["gmbinding"])[brain].astype(float),
            "wm_prob": labels["wm"][brain].astype(float), "thalamus": labels["thalamus"][brain],
            "true_reference": fractions["gmref"][brain] >= 0.9}


def spatial_case(seed: int, cov: float):
    rng = np.random.default_rng(seed)
    controls = []
    for _ in range(3):
        control = spatial_brain(rng, patient=False, cov=cov)
        controls.append(SvcaControl(normalise_tacs(control["raw"]), control["gm_prob"], control["wm_prob"],
                                    control["thalamus"], TIMING.end_min))
    classes = build_svca_classes(controls)
    subject = spatial_brain(rng, patient=True, cov=cov)
    return {name: _score(subject["raw"], subject["gm_prob"], subject["true_reference"], classes, name)
            for name in SOLVERS}


def test_bids_report(out_svca: Path, work: Path | None, bids_dir: Path | None = None) -> None:
    """Per-session figures of the pipeline's SVCA reference on data/test_bids (see the module docstring)."""
    import nibabel as nib
    import pandas as pd

    import importlib.util

    e2e_dir = Path(__file__).resolve().parents[1] / "tests" / "e2e"
    sys.path.insert(0, str(e2e_dir))
    from e2e_support import one, session_prefix, truth_sessions  # noqa: E402

    spec = importlib.util.spec_from_file_location("svca_e2e_acceptance", e2e_dir / "test_svca_e2e.py")
    e2e = importlib.util.module_from_spec(spec)  # the acceptance's measurement (name clash with tests/pet)
    spec.loader.exec_module(e2e)

    from tspo_bids.anat.template import atlas_group_mask

    print(f"{'session':22s} {'voxels':>7s} {'purity':>7s} {'maxerr':>7s} {'mean':>7s} {'pvcmax':>7s} {'perfect':>8s} "
          f"{'CSF/WM svca':>12s} {'CSF/WM ref':>11s}   oracle mean error (erosion 0/1/2)")
    for truth_file in truth_sessions(*([bids_dir] if bids_dir is not None else [])):
        prefix = session_prefix(truth_file)
        figures = e2e.reference_figures(out_svca, truth_file)
        line = (f"{prefix:22s} {figures['n_voxels']:7d} {figures['purity']:7.3f} {figures['max_tac_error']:7.3f} "
                f"{figures['mean_tac_error']:+7.3f}")
        # What a perfect pipeline sees: the phantom's true reference mask on its noise-free 5 mm-PSF PET
        # (desc-perfect_tacs), against the same tissue TAC; then the true CSF and WM content of the SVCA
        # voxels and of that true reference mask.
        truth = pd.read_csv(one(truth_file.parent, "*_desc-tissue_tacs.tsv"), sep="\t")
        perfect = pd.read_csv(one(truth_file.parent, "*_desc-perfect_tacs.tsv"), sep="\t")
        late = truth["frame_start"].to_numpy(float) >= e2e.TAC_FROM_S
        perfect_error = perfect["cerebellumgm"].to_numpy(float)[late] / truth["cerebellumgm"].to_numpy(float)[late] - 1
        svca_mask = np.asarray(nib.load(one(out_svca, f"sub-*/**/pet/{prefix}_*space-T1w_label-svca_desc-ref_mask"
                                                      ".nii.gz")).dataobj) > 0
        true_ref = np.asarray(nib.load(one(truth_file.parent, "*_label-cerebellumgm_mask.nii.gz")).dataobj) > 0
        true_csf, true_wm = (np.asarray(nib.load(one(truth_file.parent, f"*_label-{label}_probseg.nii.gz")).dataobj)
                             for label in ("CSF", "WM"))
        pvc_files = list(out_svca.glob(f"sub-*/**/pet/{prefix}_*pvc-GTM_seg-tspo_desc-preproc_tacs.tsv"))
        pvc_error = (f"{np.abs(e2e.reference_tac_error(out_svca, truth_file, pvc=True)).max():7.3f}" if pvc_files
                     else f"{'n/a':>7s}")
        line += f" {pvc_error} {np.abs(perfect_error).max():8.3f}" + "".join(
            f" {true_csf[mask].mean():6.3f}/{true_wm[mask].mean():.3f}" for mask in (svca_mask, true_ref))
        if work is not None:
            folder = prefix.replace("-", "_") + "_trc_PK11195_wf"
            pet = np.asarray(nib.load(one(work, f"tspo_bids_wf/{folder}/pet_wf/pet_resample_t1w/resampled.nii.gz"
                                          )).dataobj, dtype=float)
            true_gm = np.asarray(nib.load(one(truth_file.parent, "*_label-GM_probseg.nii.gz")).dataobj)
            atlas = np.asarray(nib.load(one(truth_file.parent, "*_atlas-AAL_dseg.nii.gz")).dataobj)
            oracle = []
            for erosion in (0, 1, 2):
                mask = atlas_group_mask(atlas, "cerebellum") & (true_gm > 0.9)
                mask = ndimage.binary_erosion(mask, iterations=erosion) if erosion else mask
                tac = pet[mask].mean(axis=0)
                oracle.append(f"{(tac[late] / truth['cerebellumgm'].to_numpy(float)[late] - 1).mean():+.3f}")
            line += "   " + "/".join(oracle)
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-bids", type=Path, metavar="OUT_SVCA",
                        help="report the pipeline's SVCA reference on data/test_bids instead of simulating")
    parser.add_argument("--work", type=Path, help="with --test-bids: the participant work directory (oracle)")
    parser.add_argument("--bids", type=Path, help="with --test-bids: another phantom dataset made by tspo-bids-simulate "
                        "(default data/test_bids)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 11, 12])
    parser.add_argument("--covs", type=float, nargs="+", default=[0.10, 0.20, 0.30])
    parser.add_argument("--no-spatial", action="store_true")
    args = parser.parse_args()
    if args.test_bids is not None:
        test_bids_report(args.test_bids, args.work, args.bids)
        return
    cases = {"mixture": mixture_case} if args.no_spatial else {"mixture": mixture_case, "spatial": spatial_case}
    print(f"{'brain':8s} {'cov':>5s} {'seed':>5s} {'solver':10s} {'voxels':>7s} {'purity':>7s} {'TACerr':>7s}  pass")
    for brain, case in cases.items():
        for cov in args.covs:
            summary = {name: [] for name in SOLVERS}
            for seed in args.seeds:
                start = time.perf_counter()
                results = case(seed, cov)
                for name, (count, purity, error) in results.items():
                    ok = purity >= 0.90 and error <= 0.03
                    summary[name].append((purity, error, ok))
                    print(f"{brain:8s} {cov:5.2f} {seed:5d} {name:10s} {count:7d} {purity:7.3f} {error:7.4f}  "
                          f"{'yes' if ok else 'no'}")
                print(f"{'':8s} ({time.perf_counter() - start:.1f} s)")
            for name, rows in summary.items():
                purities, errors, oks = zip(*rows)
                print(f"== {brain} cov {cov:.2f} {name:10s}: purity min {np.nanmin(purities):.3f}, TAC error max "
                      f"{np.nanmax(errors):.4f}, pass {sum(oks)}/{len(oks)}")


if __name__ == "__main__":
    main()
