"""Benchmark: memory and time of the compartment PVC with per-lesion compartments (the pipeline's --pvc).

Each lesion adds two compartments (its core and its 2 mm WM rim). This script runs the
correction the way ``tspo_bids.interfaces.pvc.PartialVolumeCorrect`` does (tissue compartments,
compartment GTM through the PET-grid model, RBV) on a synthetic head on a realistic grid
(1 mm T1w 256 x 256 x 176, PET 2.03 x 2.03 x 2.8 mm voxels, rotated and shifted), for several
lesion counts, each in a fresh process, and prints per count: the number of compartments, the
bytes held by the fraction maps and spread functions, wall time of each step, the resident
memory once the inputs (synthetic maps and the PET series, as the node holds them) are built, the
process's peak resident memory (``resource.getrusage``; includes building the synthetic inputs)
and the peak of what the correction itself allocates on top of its inputs (``tracemalloc``,
which sees numpy's buffers; the RBV output series is part of it).

Run (about 1-2 min per lesion count after the change; needs ~4 GB)::

    python benchmarks/pvc_lesion_memory.py                    # 0 10 30 50 lesions, 37 frames
    python benchmarks/pvc_lesion_memory.py --lesions 0 50 --frames 8

Before/after: ``--code DIR`` runs the cases with the ``tspo_bids`` package found in ``DIR``
(e.g. the full-grid version, extracted with ``git archive <commit> tspo_bids | tar -x -C DIR``);
the public API the script uses is the same in both.

Measured (2 cores, shared with other jobs; 37 frames; times vary by ~+-20 %)::

    lesions compartments | cropped (now)                 | full-grid (before, 1723208^)
                         | maps MiB  total s  peak GiB   | maps MiB  total s  peak GiB
          0            7 |      101     17.8      3.72   |      616     34.4      4.26
         10           29 |      134     20.8      3.90   |     2552     69.8      6.74
         30           69 |      173     24.3      4.01   |     6072    149.0     11.05
         50          109 |      203     26.7      4.10   |     9592    236.6     15.35

("maps": fraction maps + spread functions held; GTM activities and RBV agree, see the checksums.)
The node's ``mem_gb`` (tspo_bids/workflows/pvc.py) is 5.0: the 4.10 GiB peak at 50 lesions, plus
~5 MiB per further lesion (0.25 GiB for 100), plus ~0.5 GiB for NIfTI reading and writing, which
this script leaves out. Most of it is the 4D series and the RBV output (2 x frames x grid x 4
bytes: 3.4 GiB here), so it scales with the grid and the number of frames, not with the lesions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

SHAPE = (256, 256, 176)  # 1 mm T1w grid
T1W_VOXEL_MM = (1.0, 1.0, 1.0)
PET_SHAPE = (128, 128, 90)
PET_VOXEL_MM = (2.03, 2.03, 2.8)
PSF_FWHM_MM = (5.0, 5.0, 5.5)


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def _rss_now_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def synthetic_head(n_lesions: int, rng: np.random.Generator):
    """Ellipsoidal brain (fractional GM/WM/CSF), thalamus, deep GM, cerebellum; ``n_lesions`` WM lesions
    of 3-10 mm diameter (lesion labels 1..n)."""
    from tspo_bids.anat.regions import AtlasGroups

    axes = [np.arange(n, dtype=np.float32) - (n - 1) / 2 for n in SHAPE]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    radius = np.sqrt((x / 68) ** 2 + (y / 82) ** 2 + (z / 62) ** 2) * 60  # mm, brain edge at 60
    wm = np.clip(50.0 - radius, 0, 1).astype(np.float32)
    gm = (np.clip(57.0 - radius, 0, 1) - wm).astype(np.float32)
    brain = radius < 60.0
    csf = np.where(brain, 1.0 - gm - wm, 0.0).astype(np.float32)
    del radius
    thalamus = (x**2 + (y + 8) ** 2 + z**2) < 12**2
    deepgm = ((np.abs(x) - 20) ** 2 + (y - 10) ** 2 + z**2) < 9**2
    cerebellum = brain & (z < -35) & (y < -30)
    empty = np.zeros(SHAPE, bool)
    atlas = AtlasGroups(cerebellum=cerebellum, vermis=empty, thalamus=thalamus, deepgm=deepgm)
    labels = np.zeros(SHAPE, np.int32)
    for lesion in range(1, n_lesions + 1):
        while True:
            centre = rng.uniform([-50, -60, -40], [50, 60, 40])
            if np.linalg.norm(centre / [68, 82, 62] * 60) < 42 and np.linalg.norm(centre - [0, -8, 0]) > 20:
                break
        r = rng.uniform(1.5, 5.0)
        index = centre + (np.array(SHAPE) - 1) / 2  # voxel coordinates (1 mm voxels)
        box = tuple(slice(max(int(c - r), 0), min(int(c + r) + 2, n)) for c, n in zip(index, SHAPE))
        gx, gy, gz = np.ogrid[box]
        ball = (gx - index[0]) ** 2 + (gy - index[1]) ** 2 + (gz - index[2]) ** 2 <= r**2
        labels[box][ball & (labels[box] == 0)] = lesion
    return gm, wm, csf, brain, atlas, labels


def model():
    from tspo_bids.pvc import PetGridModel
    from tspo_bids.simulate.geometry import rigid_matrix

    t1w_affine = np.diag([*T1W_VOXEL_MM, 1.0])
    t1w_affine[:3, 3] = -(np.array(SHAPE) - 1) * np.array(T1W_VOXEL_MM) / 2
    pet_affine = np.diag([*PET_VOXEL_MM, 1.0])
    pet_affine[:3, 3] = -(np.array(PET_SHAPE) - 1) * np.array(PET_VOXEL_MM) / 2
    t1w_to_pet = rigid_matrix(np.rad2deg([-0.03, 0.0, 0.05]), [1.5, -2.0, 3.0])  # about x, then z; then shifted
    return PetGridModel(PSF_FWHM_MM, SHAPE, t1w_affine, PET_SHAPE, pet_affine, t1w_to_pet)


def _stored_bytes(maps) -> int:
    """Bytes of a tuple of arrays (full-grid code) or of a FullGridMaps (cropped code)."""
    boxed = getattr(maps, "boxed", None)
    if boxed is not None:
        return sum(m.values.nbytes for m in boxed)
    return sum(np.asarray(m).nbytes for m in maps)


def run_case(n_lesions: int, n_frames: int, seed: int) -> dict:
    """One lesion count, in this process: the steps of the PVC node, timed."""
    from tspo_bids.anat.ms_regions import define_ms_regions
    from tspo_bids.pet.phenotypes import lesion_core_and_rim
    from tspo_bids.pvc.compartments import compartment_gtm, compartment_rbv, tissue_compartments

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    gm, wm, csf, brain, atlas, labels = synthetic_head(n_lesions, rng)
    forward = model()
    base = forward(gm + 0.6 * wm + 0.05 * csf).astype(np.float32)
    series = np.empty(SHAPE + (n_frames,), np.float32)
    for t in range(n_frames):
        series[..., t] = base * np.float32(1.0 + 0.05 * t)
    del base
    rims = lesion_core_and_rim(labels, T1W_VOXEL_MM, rim_mm=2.0, wm_mask=wm >= 0.5) if n_lesions else None
    ms = define_ms_regions(wm, gm, labels, T1W_VOXEL_MM, brain_mask=brain) if n_lesions else None
    figures = {"lesions": n_lesions, "frames": n_frames, "setup_s": time.perf_counter() - t0,
               "rss_inputs_gib": _rss_now_gib()}

    tracemalloc.start()  # numpy reports its buffers: the peak of what the correction allocates
    t1 = time.perf_counter()
    compartments = tissue_compartments(gm, wm, csf, brain, atlas, ms, lesion_rims=rims)
    t2 = time.perf_counter()
    gtm = compartment_gtm(series, compartments, brain, forward)
    t3 = time.perf_counter()
    corrected = compartment_rbv(series, compartments, gtm, brain)
    t4 = time.perf_counter()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    figures.update(
        compartments=len(compartments.names),
        fractions_mib=_stored_bytes(compartments.fractions) / 2**20,
        spread_mib=_stored_bytes(gtm.spread) / 2**20,
        compartments_s=t2 - t1, gtm_s=t3 - t2, rbv_s=t4 - t3, correction_s=t4 - t1,
        rss_peak_gib=_peak_rss_gib(), correction_peak_gib=traced_peak / 2**30,
        condition_number=gtm.condition_number,
        checksum=float(np.sum(gtm.activities)) + float(np.mean(corrected[brain])),
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lesions", type=int, nargs="+", default=[0, 10, 30, 50])
    parser.add_argument("--frames", type=int, default=37, help="PET frames (37: a 90-min PBR28 schedule)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--code", type=Path, help="directory holding the tspo_bids package to benchmark")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # child process: one lesion count
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(run_case(args.case, args.frames, args.seed)))
        return

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if args.code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.code.resolve()), env.get("PYTHONPATH", "")])
    print(f"grid {SHAPE} at {T1W_VOXEL_MM} mm, PET {PET_SHAPE} at {PET_VOXEL_MM} mm, PSF {PSF_FWHM_MM} mm, "
          f"{args.frames} frames, code: {args.code or 'installed'}", flush=True)
    header = (f"{'lesions':>7} {'comps':>5} {'fractions':>10} {'spread':>9} {'tissue':>7} {'GTM':>7} {'RBV':>7} "
              f"{'total':>7} {'RSS inputs':>10} {'RSS peak':>9} {'correction peak':>15}")
    print(header + "\n" + " " * 19 + "MiB       MiB       s       s       s       s        GiB       GiB             GiB",
          flush=True)
    for n in args.lesions:
        out = subprocess.run([sys.executable, __file__, "--case", str(n), "--frames", str(args.frames),
                              "--seed", str(args.seed)], env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{n:>7} failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        f = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{f['lesions']:>7} {f['compartments']:>5} {f['fractions_mib']:>10.1f} {f['spread_mib']:>9.1f} "
              f"{f['compartments_s']:>7.1f} {f['gtm_s']:>7.1f} {f['rbv_s']:>7.1f} {f['correction_s']:>7.1f} "
              f"{f['rss_inputs_gib']:>10.2f} {f['rss_peak_gib']:>9.2f} {f['correction_peak_gib']:>15.2f}"
              f"   (checksum {f['checksum']:.6g})", flush=True)


if __name__ == "__main__":
    main()
