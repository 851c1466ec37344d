"""Registration / segmentation accuracy and timing on a digital-phantom participant.

Usage::

    python benchmarks/bench_registration.py [--t1w-mm 1.5] [--pet-mm 3.0] [--threads 2] [--seed 0]

Writes a one-participant phantom (tspo_bids.simulate) to a temporary folder, runs
every image-processing step of a participant in order, and prints each step's wall
time and the accuracy against the phantom truth: PET->T1w and FLAIR->T1w mean
displacement over brain voxels (mm), WM/GM Dice (p >= 0.5 truth vs dseg), brain-mask
Dice.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b)))


def run_phantom_participant(root: Path, n_threads: int = 1, log=print) -> dict[str, float]:
    """Run the image-processing chain on the first participant of a phantom dataset.

    The template transforms are written to ``root.parent / "template_xfm"``: give a ``root`` inside
    a temporary folder (both callers do).

    Returns a dict of accuracy figures and per-step times (seconds).
    """
    from tspo_bids.anat import preprocess as P
    from tspo_bids.registration.coregister import rigid_register
    from tspo_bids.registration.motion import frame_displacement_mm, motion_correct
    from tspo_bids.registration.transforms import mask_points_world, mean_displacement_mm

    t1w_path = next(root.glob("sub-*/**/anat/*_T1w.nii.gz"))
    flair_path = next(root.glob("sub-*/**/anat/*_FLAIR.nii.gz"), None)
    pet_path = next(root.glob("sub-*/**/pet/*_pet.nii.gz"))
    prefix = t1w_path.name.removesuffix("_T1w.nii.gz")
    truth = next((root / "derivatives" / "phantom-truth").glob(f"sub-*/**/anat/{prefix}_space-T1w_label-brain_mask.nii.gz")).parent
    truth_any = truth.parent
    sidecar = json.loads(pet_path.with_name(pet_path.name.replace(".nii.gz", ".json")).read_text())
    start_min = np.asarray(sidecar["FrameTimesStart"], float) / 60.0
    duration_min = np.asarray(sidecar["FrameDuration"], float) / 60.0

    figures: dict[str, float] = {}
    timer = time.perf_counter

    t1w = nib.load(t1w_path)
    pet = nib.load(pet_path)
    log(f"T1w {t1w.shape} {t1w.header.get_zooms()[:3]}, PET {pet.shape} {pet.header.get_zooms()[:3]}")

    t0 = timer()
    _, frame_matrices, pet_ref = motion_correct(pet, start_min + duration_min / 2, duration_min, n_threads=n_threads)
    figures["time_motion_s"] = timer() - t0
    figures["max_frame_displacement_mm"] = float(frame_displacement_mm(frame_matrices, pet_ref).max())

    t0 = timer()
    t1w_n4 = P.n4_bias_correct(t1w, n_threads=n_threads)
    figures["time_n4_s"] = timer() - t0

    t0 = timer()
    # transforms next to the dataset (the caller removes it), not in a new folder under $TMPDIR
    brain_mask, transforms = P.brain_mask_from_template(t1w_n4, out_dir=Path(root).parent / "template_xfm",
                                                        n_threads=n_threads)
    figures["time_template_syn_and_mask_s"] = timer() - t0

    t0 = timer()
    priors = P.template_priors(t1w_n4, transforms)
    seg = P.segment_tissues(t1w_n4, brain_mask, priors=priors, n_threads=n_threads)
    figures["time_segment_s"] = timer() - t0

    t0 = timer()
    seg_kmeans = P.segment_tissues(t1w_n4, brain_mask, n_threads=n_threads)
    figures["time_segment_kmeans_s"] = timer() - t0

    t0 = timer()
    from tspo_bids.anat.template import load_template
    labels = P.warp_labels_to_t1w(load_template(2).atlas, t1w_n4, transforms)
    figures["time_warp_labels_s"] = timer() - t0

    t0 = timer()
    pet_to_t1w = rigid_register(t1w_n4, pet_ref, metric="mattes", n_threads=n_threads)
    figures["time_pet_to_t1w_s"] = timer() - t0

    truth_brain = nib.load(next(truth_any.rglob(f"{prefix}_space-T1w_label-brain_mask.nii.gz")))
    points = mask_points_world(truth_brain)
    true_pet = np.asarray(json.loads(next(truth_any.rglob(f"{prefix}_*from-T1w_to-pet_mode-image_desc-truth_xfm.json")).read_text())["matrix"])
    figures["pet_to_t1w_error_mm"] = mean_displacement_mm(pet_to_t1w, true_pet, points)

    if flair_path is not None:
        t0 = timer()
        flair_to_t1w = rigid_register(t1w_n4, nib.load(flair_path), metric="mattes", n_threads=n_threads)
        figures["time_flair_to_t1w_s"] = timer() - t0
        true_flair = np.asarray(json.loads(next(truth_any.rglob(f"{prefix}_from-T1w_to-FLAIR_mode-image_desc-truth_xfm.json")).read_text())["matrix"])
        figures["flair_to_t1w_error_mm"] = mean_displacement_mm(flair_to_t1w, true_flair, points)

    def truth_prob(label: str) -> np.ndarray:
        img = nib.load(next(truth_any.rglob(f"{prefix}_space-T1w_label-{label}_probseg.nii.gz")))
        return img.get_fdata() >= 0.5

    wm_true, gm_true = truth_prob("WM"), truth_prob("GM")
    for name, result in (("priors", seg), ("kmeans", seg_kmeans)):
        dseg = np.asarray(result["dseg"].dataobj)
        figures[f"wm_dice_{name}"] = dice(dseg == 3, wm_true)
        figures[f"gm_dice_{name}"] = dice(dseg == 2, gm_true)
    figures["brain_mask_dice"] = dice(np.asarray(brain_mask.dataobj) > 0, np.asarray(truth_brain.dataobj) > 0)
    true_atlas = np.asarray(nib.load(next(truth_any.rglob(f"{prefix}_space-T1w_atlas-AAL_dseg.nii.gz"))).dataobj)
    from tspo_bids.anat.template import atlas_group_mask
    for group in ("cerebellum", "thalamus"):
        figures[f"{group}_label_dice"] = dice(atlas_group_mask(np.asarray(labels.dataobj), group),
                                              atlas_group_mask(true_atlas, group))
    figures["time_total_s"] = sum(v for k, v in figures.items() if k.startswith("time_") and k != "time_segment_kmeans_s")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t1w-mm", type=float, default=1.5)
    parser.add_argument("--pet-mm", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group", default="RRMS")
    args = parser.parse_args()

    from tspo_bids.registration.transforms import set_ants_threads
    set_ants_threads(args.threads)  # before the first ITK call of this process
    from tspo_bids.simulate import PhantomOptions, make_dataset

    options = PhantomOptions(template_resolution_mm=2, t1w_voxel_mm=(args.t1w_mm,), pet_voxel_mm=(args.pet_mm,))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_dataset(Path(tmp) / "bids", 1, "pk11195", seed=args.seed, sessions=(), groups=(args.group,), options=options)
        print(f"phantom written in {time.perf_counter() - t0:.1f} s")
        figures = run_phantom_participant(Path(tmp) / "bids", n_threads=args.threads)
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:8.3f}")


if __name__ == "__main__":
    main()
