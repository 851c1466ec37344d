"""Benchmark of the partial-volume-correction numerics on a 1 mm T1w-sized grid.

GTM for 30 regions x 37 frames on 182 x 218 x 182 voxels of 1 mm (target: < 30 s on 2 cores),
then RBV on the same series. The anatomy is synthetic (ellipsoidal head, 3 mm cortex split into
lobes, WM with lesions, deep grey nuclei, cerebellum, CSF, remaining tissue) so the script needs no
data; the measured series is the PSF-blurred piecewise-constant truth, so the recovery error of the
float32 path is printed too. ``--sensitivity`` adds GTM with the PSF misspecified by +-1 mm.

Run: ``python benchmarks/bench_pvc.py [--fwhm 5] [--frames 37] [--sensitivity] [--forward]``
Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from tspo_bids.pvc import (
    gaussian_psf_blur,
    gtm_condition_number,
    gtm_correct,
    gtm_matrix,
    partition_regions,
    rbv_correct,
    regional_means,
)
from tspo_bids.pvc.forward import PetGridModel

GRID = (182, 218, 182)
VOXEL_MM = 1.0


def synthetic_head(shape: tuple[int, int, int] = GRID, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Partition label image (1..30) of a synthetic head on a 1 mm grid, and the region names."""
    rng = np.random.default_rng(seed)
    centre = (np.asarray(shape) - 1) / 2.0
    x, y, z = (np.arange(n, dtype=np.float32) - c for n, c in zip(shape, centre))
    x, y, z = np.meshgrid(x, y, z, indexing="ij", sparse=True)
    radius = np.sqrt((x / 70.0) ** 2 + (y / 90.0) ** 2 + (z / 72.0) ** 2)  # 1 at the brain surface
    head, brain = radius < 1.12, radius < 1.0
    outer_csf = brain & (radius >= 0.96)
    cortex = (radius >= 0.92) & (radius < 0.96)  # ~3 mm thick
    wm = radius < 0.92
    ventricles = ((np.abs(x) - 8.0) / 6.0) ** 2 + (y / 25.0) ** 2 + ((z - 10.0) / 8.0) ** 2 < 1.0
    masks: dict[str, np.ndarray] = {}
    for index in range(8):  # lesions, radius 2-5 mm, in WM
        cx, cy, cz = rng.uniform(-35, 35), rng.uniform(-50, 50), rng.uniform(-20, 30)
        r = rng.uniform(2.0, 5.0)
        masks[f"lesion{index + 1}"] = ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 < r**2) & wm
    for side, sign in (("L", -1.0), ("R", 1.0)):
        masks[f"thalamus{side}"] = ((x - sign * 11) / 8) ** 2 + ((y + 12) / 14) ** 2 + ((z - 2) / 9) ** 2 < 1
        masks[f"caudate{side}"] = ((x - sign * 14) / 4) ** 2 + ((y - 12) / 12) ** 2 + ((z - 12) / 6) ** 2 < 1
        masks[f"putamen{side}"] = ((x - sign * 25) / 5) ** 2 + ((y - 4) / 16) ** 2 + ((z - 2) / 8) ** 2 < 1
        masks[f"cerebellum{side}"] = ((x - sign * 25) / 22) ** 2 + ((y + 60) / 20) ** 2 + ((z + 40) / 16) ** 2 < 1
    masks["ventricles"] = ventricles
    masks["brainstem"] = (x / 10) ** 2 + ((y + 25) / 12) ** 2 + ((z + 35) / 25) ** 2 < 1
    azimuth = np.arctan2(y, x) + np.zeros_like(z)
    for lobe in range(8):  # cortex split into 8 sectors
        lower, upper = -np.pi + lobe * np.pi / 4, -np.pi + (lobe + 1) * np.pi / 4
        masks[f"cortex{lobe + 1}"] = cortex & (azimuth >= lower) & (azimuth < upper)
    masks["nawm"] = wm & (x > 0)
    masks["wm"] = wm
    masks["csf"] = outer_csf
    masks["remaining"] = head
    names = list(masks)
    labels = partition_regions([masks[name] for name in names])
    return labels, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fwhm", type=float, default=5.0, help="PSF FWHM, mm (default 5)")
    parser.add_argument("--frames", type=int, default=37, help="number of frames (default 37)")
    parser.add_argument("--sensitivity", action="store_true", help="also GTM with the PSF at fwhm -+ 1 mm")
    parser.add_argument("--forward", action="store_true",
                        help="also time gtm_matrix through a forward callable (whole-image blurs, no cropping)")
    parser.add_argument("--pet-voxel", type=float, default=2.0,
                        help="PET voxel size, mm, of the PET-grid model timed too (default 2; 0 skips it)")
    args = parser.parse_args()
    print(f"cores available: {os.cpu_count()}; load average at start: {os.getloadavg()[0]:.2f} "
          "(other processes share the CPU)")

    start = time.perf_counter()
    labels, names = synthetic_head()
    counts = np.bincount(labels.ravel())[1:]
    print(f"grid {labels.shape} at {VOXEL_MM} mm, {len(names)} regions, smallest {counts.min()} voxels, "
          f"built in {time.perf_counter() - start:.1f} s")

    rng = np.random.default_rng(1)
    frame_shape = np.exp(-np.linspace(0.0, 3.0, args.frames)) + 0.2
    truth = (rng.uniform(0.5, 3.0, (len(names), 1)) * frame_shape).astype(np.float32)
    start = time.perf_counter()
    series = np.empty(labels.shape + (args.frames,), dtype=np.float32, order="F")  # as nibabel loads it
    padded = np.concatenate([np.zeros((1, args.frames), np.float32), truth])
    for frame in range(args.frames):
        series[..., frame] = gaussian_psf_blur(padded[labels, frame], args.fwhm, VOXEL_MM)
    print(f"measured series {series.shape} (float32, {series.nbytes / 2**30:.2f} GiB) "
          f"simulated in {time.perf_counter() - start:.1f} s (not part of the figures)")

    timings: dict[str, float] = {}
    start = time.perf_counter()
    matrix = gtm_matrix(labels, args.fwhm, VOXEL_MM)
    timings["gtm_matrix (blur each mask once, float32)"] = time.perf_counter() - start
    start = time.perf_counter()
    observed = regional_means(series, labels)
    timings[f"regional_means ({args.frames} frames)"] = time.perf_counter() - start
    start = time.perf_counter()
    corrected = gtm_correct(observed, matrix)
    timings["gtm_correct (one solve, all frames)"] = time.perf_counter() - start
    gtm_total = sum(timings.values())
    if args.forward:
        start = time.perf_counter()
        gtm_matrix(labels, args.fwhm, VOXEL_MM,
                   forward=lambda image: gaussian_psf_blur(image, args.fwhm, VOXEL_MM))
        timings["gtm_matrix through a forward callable (not in the GTM total)"] = time.perf_counter() - start
    if args.pet_voxel > 0:
        pet_affine = np.diag([args.pet_voxel] * 3 + [1.0])
        pet_affine[:3, 3] = -args.pet_voxel / 2  # PET voxel centres between T1w voxel centres
        pet_shape = tuple(int(np.ceil(n * VOXEL_MM / args.pet_voxel)) for n in labels.shape)
        model = PetGridModel(args.fwhm, labels.shape, np.eye(4), pet_shape, pet_affine, sample_order=3)
        start = time.perf_counter()
        gtm_matrix(labels, args.fwhm, VOXEL_MM, forward=model)
        timings[f"gtm_matrix through PetGridModel (PET grid {pet_shape} at {args.pet_voxel:g} mm; "
                "not in the GTM total)"] = time.perf_counter() - start
    start = time.perf_counter()
    rbv = rbv_correct(series, labels, args.fwhm, VOXEL_MM, corrected)
    timings[f"rbv_correct ({args.frames} frames, given GTM values)"] = time.perf_counter() - start

    for what, seconds in timings.items():
        print(f"  {what:<64s} {seconds:7.2f} s")
    print(f"GTM total ({len(names)} regions x {args.frames} frames): {gtm_total:.2f} s (target < 30 s)")
    print(f"condition number of G: {gtm_condition_number(matrix):.1f}")
    relative = np.abs(corrected / truth - 1)
    print(f"GTM recovery of the truth (float32 path): max relative error {relative.max():.2e}")
    rbv_relative = np.abs(regional_means(rbv, labels) / corrected - 1)
    print(f"RBV regional means vs GTM: max relative difference {rbv_relative.max():.2e}")
    uncorrected = observed / truth - 1
    print("uncorrected relative error, frame-mean per region: "
          + ", ".join(f"{name} {value:+.3f}" for name, value in zip(names, uncorrected.mean(axis=1))))

    if args.sensitivity:
        print(f"PSF misspecification (true {args.fwhm:g} mm): frame-mean relative error of GTM per region")
        for assumed in (args.fwhm - 1.0, args.fwhm + 1.0):
            wrong = gtm_correct(observed, gtm_matrix(labels, assumed, VOXEL_MM)) / truth - 1
            print(f"  assumed {assumed:g} mm: "
                  + ", ".join(f"{name} {value:+.3f}" for name, value in zip(names, wrong.mean(axis=1))))


if __name__ == "__main__":
    main()
