"""What limits the voxel-map bound (issue 4: median |DVR error| <= 0.02 over WM voxels, noise-free, PSF-free).

tests/e2e/test_voxel_maps.py prints the uncorrected maps ~0.044 high against the phantom's pure-tissue DVR
image: the cerebellar-GM reference mask holds CSF and WM. ``--pvc rbv`` lets the GTM correct the reference TAC
for its tissue content, so the error then depends on how well the T1w segmentation estimates that content.
This script separates the two by running the participant level twice on the test's phantom:

1. ``pipeline``: as a user would, ``--pvc rbv --pvc-psf 0.5`` (0.5 mm: the PET has no PSF, the GTM still
   models the PET voxel);
2. ``true fractions``: the same work directory with the segmentation node's CSF/GM/WM fraction maps replaced by
   the phantom's true ones (same T1w grid), then the same command again (Nipype re-runs every node downstream
   of the changed files; nothing else changes).

For each it prints the tissue content of the pipeline's reference mask (true and as segmented), the GTM
cerebellar-GM TAC against the true tissue TAC after 2 min, and the median (signed) DVR error over true-WM
voxels of the uncorrected and RBV maps, exactly as the test computes it.

Usage::

    python benchmarks/voxel_maps_oracle.py [WORK_ROOT]   # about 2 min on 2 cores
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from tspo_bids.simulate import PhantomOptions, make_dataset

#: The phantom of tests/e2e/test_voxel_maps.py (same seed, grids, no PSF, no noise).
SEED = 20260405
PHANTOM_OPTIONS = PhantomOptions(t1w_voxel_mm=(1.5,), pet_voxel_mm=(3.0,), psf_fwhm_mm=0.0, voxel_cov=(0.0, 0.0))
TISSUES = (("csf", "CSF"), ("gm", "GM"), ("wm", "WM"))
MODELS = ("SRTM", "SRTM2", "Logan")


def _data(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, np.float64)


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one {pattern} under {folder}, found {len(found)}")
    return found[0]


def run_participant(bids: Path, out: Path, work: Path) -> None:
    command = [sys.executable, "-m", "tspo_bids.cli.run", str(bids), str(out), "participant", "-w", str(work),
               "--nprocs", "2", "--omp-nthreads", "1", "--pvc", "rbv", "--pvc-psf", "0.5"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])


def tissue_node(work: Path) -> Path:
    return _one(work, "tspo_bids_wf/sub_*_wf/anat_wf/tissues")


def install_true_fractions(truth: Path, work: Path) -> None:
    """Overwrite the segmentation node's fraction maps with the phantom's (same grid, same header)."""
    node = tissue_node(work)
    for name, label in TISSUES:
        target = node / f"{name}_prob.nii.gz"
        pipeline = nib.load(target)
        true_img = nib.load(_one(truth, f"*_space-T1w_label-{label}_probseg.nii.gz"))
        if true_img.shape != pipeline.shape or not np.allclose(true_img.affine, pipeline.affine):
            raise SystemExit("the phantom's T1w grid differs from the pipeline's")
        nib.save(nib.Nifti1Image(true_img.get_fdata(dtype=np.float32), pipeline.affine, pipeline.header), target)


def report(label: str, truth: Path, out: Path, work: Path) -> None:
    reference = _data(_one(out, "sub-*/anat/*_label-cerebellumgm_desc-ref_mask.nii.gz")) > 0
    node = tissue_node(work)
    true_content = [_data(_one(truth, f"*_space-T1w_label-{lab}_probseg.nii.gz"))[reference].mean()
                    for _, lab in TISSUES]
    seg_content = [_data(node / f"{name}_prob.nii.gz")[reference].mean() for name, _ in TISSUES]
    tissue_tacs = pd.read_csv(_one(truth, "*_desc-tissue_tacs.tsv"), sep="\t")
    gtm_tacs = pd.read_csv(_one(out, "sub-*/pet/*_pvc-GTM_seg-tspo_desc-preproc_tacs.tsv"), sep="\t")
    late = tissue_tacs["frame_start"].to_numpy(float) >= 120.0
    ratio = gtm_tacs["cerebellumgm"].to_numpy(float)[late] / tissue_tacs["cerebellumgm"].to_numpy(float)[late]
    print(f"\n== {label}")
    print("reference mask content (CSF, GM, WM): true " + " ".join(f"{v:.3f}" for v in true_content)
          + " | segmented " + " ".join(f"{v:.3f}" for v in seg_content))
    print(f"GTM cerebellar-GM TAC / true TAC after 2 min: min {ratio.min():.4f} max {ratio.max():.4f} "
          f"mean {ratio.mean():.4f}")
    true_dvr = _data(_one(truth, "*_space-T1w_desc-truth_dvr.nii.gz"))
    wm = (_data(_one(truth, "*_space-T1w_label-WM_probseg.nii.gz")) >= 0.9) & np.isfinite(true_dvr)
    for tag in ("", "pvc-RBV_"):
        for model in MODELS:
            dvr = _data(_one(out, f"sub-*/pet/*_space-T1w_{tag}model-{model}_meas-DVR_mimap.nii.gz"))
            error = dvr[wm] - true_dvr[wm]
            print(f"  {tag or 'uncorrected '}{model:<6} median |DVR error| {np.nanmedian(np.abs(error)):.4f} "
                  f"(median error {np.nanmedian(error):+.4f})")


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="voxel-oracle-"))
    bids = root / "bids"
    if not bids.exists():
        make_dataset(bids, 1, "pk11195", seed=SEED, sessions=(), groups=("HC",), options=PHANTOM_OPTIONS)
    truth = _one(bids / "derivatives" / "phantom-truth", "sub-*/anat")
    out, work = root / "out", root / "work"
    run_participant(bids, out, work)
    report("pipeline segmentation", truth, out, work)
    install_true_fractions(truth, work)
    run_participant(bids, out, work)
    report("true tissue fractions", truth, out, work)


if __name__ == "__main__":
    main()
