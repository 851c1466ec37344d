"""Performance figures of the kinetic models (prints them; not a test).

* ``srtm_bfm`` on 1 000 000 voxels x 22 frames x 200 basis functions: voxels/s and peak memory
  (targets >= 250 000 voxels/s, < 2 GiB).
* Speed-up over fitting the same voxels one at a time with scipy (``fit_srtm``: scipy bounded Brent
  on the k2a profile), timed on a 2 000-voxel sample and extrapolated (target >= 100x).
* ROI SRTM: milliseconds per TAC (target < 50 ms).

Run: ``python benchmarks/bench_kinetics.py [--voxels N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np

from tspo_bids.kinetics import FrameTiming, fit_srtm, srtm_bfm
from tspo_bids.kinetics.simulation import SrtmParams, add_noise, scale_for_cov, simulate_tacs

SEED_DURATIONS_S = [15] * 4 + [30] * 4 + [60] * 3 + [120] * 2 + [300] * 8 + [600]


def _seed_timing() -> FrameTiming:
    duration = np.asarray(SEED_DURATIONS_S, dtype=float) / 60
    start = np.concatenate(([0.0], np.cumsum(duration)[:-1]))
    return FrameTiming(start, start + duration)


def _voxels(timing: FrameTiming, n_voxels: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """float32 voxel TACs (frames x voxels), BPND 0..1.5, 10 % noise, as an image loader would give them."""
    tacs = simulate_tacs(timing, {f"b{i}": SrtmParams(0.9, 0.09, bp) for i, bp in enumerate(np.linspace(0, 1.5, 16))})
    reference = tacs.pop("reference")
    clean = np.column_stack(list(tacs.values()))
    scale = scale_for_cov(clean[:, 0], timing, 0.10)
    voxels = np.empty((timing.n_frames, n_voxels), dtype=np.float32)
    block = 100_000
    for first in range(0, n_voxels, block):
        count = min(block, n_voxels - first)
        chosen = clean[:, rng.integers(0, clean.shape[1], count)]
        voxels[:, first : first + count] = add_noise(chosen, timing, scale, rng)
    return voxels, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voxels", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2_000, help="voxels fitted one at a time")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    timing = _seed_timing()
    voxels, reference = _voxels(timing, args.voxels, rng)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) at start")

    srtm_bfm(voxels[:, :1000], reference, timing.start_min, timing.end_min)  # warm-up (grid cache, BLAS)
    tracemalloc.start()
    begin = time.perf_counter()
    maps = srtm_bfm(voxels, reference, timing.start_min, timing.end_min, n_basis=200)
    elapsed = time.perf_counter() - begin
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    input_gib = voxels.nbytes / 2**30
    rate = args.voxels / elapsed
    print(f"srtm_bfm: {args.voxels} voxels x {timing.n_frames} frames x 200 basis functions in {elapsed:.2f} s "
          f"= {rate:,.0f} voxels/s (target >= 250 000)")
    print(f"  peak memory allocated during the fit (tracemalloc): {traced_peak / 2**30:.3f} GiB; "
          f"process max RSS {max_rss_gib:.3f} GiB including the {input_gib:.3f} GiB float32 input (target < 2 GiB)")
    print(f"  median BPND {np.nanmedian(maps.bp_nd):.3f}; edge of grid {maps.edge_of_grid.mean():.2%}; "
          f"failed {maps.failed.sum()}")

    sample = voxels[:, : args.sample].astype(float)
    begin = time.perf_counter()
    for column in range(args.sample):
        fit_srtm(sample[:, column], reference, timing.start_min, timing.end_min)
    one_at_a_time = (time.perf_counter() - begin) / args.sample
    extrapolated = one_at_a_time * args.voxels
    print(f"one voxel at a time (fit_srtm, scipy): {one_at_a_time * 1e3:.2f} ms/voxel -> "
          f"{extrapolated / 60:.1f} min for {args.voxels} voxels; speed-up of srtm_bfm {extrapolated / elapsed:,.0f}x "
          "(target >= 100x)")
    print(f"ROI SRTM: {one_at_a_time * 1e3:.2f} ms per TAC (target < 50 ms)")
    print(f"machine load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
