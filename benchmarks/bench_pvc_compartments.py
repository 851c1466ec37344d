"""Benchmark: tissue-compartment GTM (the pipeline's --pvc) on a 1 mm T1w grid.

Target (PVC issue): 30 regions x 37 frames on a 1 mm T1w grid in < 30 s on 2 cores.
Prints the time of each step. Run: python benchmarks/bench_pvc_compartments.py
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from tspo_bids.anat.regions import AtlasGroups
from tspo_bids.pvc import PetGridModel
from tspo_bids.pvc.compartments import Compartments, compartment_gtm, compartment_rbv

SHAPE = (182, 218, 182)  # 1 mm MNI-sized T1w grid
N_COMPARTMENTS = 30
N_FRAMES = 37  # the 90-min PBR28 schedule


def synthetic_compartments(rng: np.random.Generator) -> tuple[Compartments, np.ndarray]:
    """30 smooth fractional compartments (sum 1 in an ellipsoidal brain)."""
    z, y, x = np.indices(SHAPE, dtype=np.float32)
    centre = (np.array(SHAPE) - 1) / 2
    brain = (((x - centre[2]) / 70) ** 2 + ((y - centre[1]) / 85) ** 2 + ((z - centre[0]) / 70) ** 2) < 1
    coarse = rng.integers(0, N_COMPARTMENTS, size=(10, 12, 10))
    labels = ndimage.zoom(coarse, np.array(SHAPE) / coarse.shape, order=0)
    fractions = []
    for k in range(N_COMPARTMENTS):
        fractions.append(np.where(brain, ndimage.gaussian_filter((labels == k).astype(np.float32), 1.0), 0))
    total = np.maximum(sum(fractions), 1e-6)
    fractions = tuple((f / total).astype(np.float32) for f in fractions)
    return Compartments(tuple(f"c{k:02d}" for k in range(N_COMPARTMENTS)), fractions), brain


def main() -> None:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    compartments, brain = synthetic_compartments(rng)
    affine = np.eye(4)
    affine[:3, 3] = -(np.array(SHAPE) - 1) / 2
    pet_affine = np.diag([2.5, 2.5, 2.5, 1.0])
    pet_shape = (76, 90, 76)
    pet_affine[:3, 3] = -(np.array(pet_shape) - 1) * 2.5 / 2
    model = PetGridModel(5.0, SHAPE, affine, pet_shape, pet_affine)
    activities = rng.uniform(1, 5, size=(N_COMPARTMENTS, N_FRAMES)).astype(np.float32)
    series = np.zeros(SHAPE + (N_FRAMES,), np.float32)
    print(f"setup {time.perf_counter() - t0:.1f} s (synthetic data; not part of the correction)")

    forward = lambda image: model.to_t1w_grid(model.to_pet_grid(image))  # noqa: E731
    t1 = time.perf_counter()
    # measured series: forward model of the true images, frame by frame (linear: via the spread functions)
    spread = [forward(f) for f in compartments.fractions]
    for t in range(N_FRAMES):
        series[..., t] = sum(a * s for a, s in zip(activities[:, t], spread))
    print(f"simulate measured series {time.perf_counter() - t1:.1f} s (not part of the correction)")

    t2 = time.perf_counter()
    result = compartment_gtm(series, compartments, brain, forward)
    gtm_seconds = time.perf_counter() - t2
    error = np.max(np.abs(result.activities - activities) / activities)
    print(f"compartment GTM, {N_COMPARTMENTS} compartments x {N_FRAMES} frames, 1 mm grid {SHAPE}: "
          f"{gtm_seconds:.1f} s (target < 30 s); condition number {result.condition_number:.1f}; "
          f"max relative error {error:.2e}")
    t3 = time.perf_counter()
    compartment_rbv(series, compartments, result, brain)
    print(f"compartment RBV, {N_FRAMES} frames: {time.perf_counter() - t3:.1f} s")


if __name__ == "__main__":
    main()
