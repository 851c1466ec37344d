"""End-to-end acceptance of the voxel parametric maps against the phantom's true DVR image.

Issue 4 acceptance: "median |DVR error| <= 0.02 over WM voxels on noise-free phantom PET
simulated without PSF blurring". The test simulates (in a temporary folder, fixed seed) one
healthy control with the project's simulator, noise-free (``voxel_cov=(0, 0)``) and without PSF
(``psf_fwhm_mm=0``), everything else as the simulator does by default (random non-linear
anatomy, rigid T1w -> PET misalignment, T1w bias field and Rician noise, FLAIR, 1 mm template),
on a realistic grid (T1w 1.5 mm, PET 3 mm), runs the participant level through the CLI and
compares the T1w-space SRTM, SRTM2 and Logan DVR maps with
``derivatives/phantom-truth/.../*_space-T1w_desc-truth_dvr.nii.gz``.

WM voxels: the phantom's true WM probability map (``*_space-T1w_label-WM_probseg``) >= 0.9.

The error is almost all in the reference TAC, not in the voxel fits: the cerebellar-GM reference
mask (``tspo_bids/anat/regions.py``) holds some CSF (no tracer) and WM, so its TAC is that of a tissue
mix, not of pure cerebellar GM (which the true DVR image is relative to). The reference region keeps a
2 mm margin from voxels where the segmentation sees CSF; without it the mask held ~5 % CSF and every
map was ~0.044 too high. With it the mask holds ~2.5 % CSF and ~8 % WM and its true DVR is ~0.993
(printed). A second check multiplies each map by that true DVR, which removes the reference region's
tissue mix; what is left (voxel fits, PET -> T1w resampling, registration, tissue mixing in WM voxels)
must also be within the bound.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from e2e_support import PARTICIPANT_OPTIONS
from e2e_support import one as _one
from e2e_support import run_cli as _run_cli
from tspo_bids.simulate import PhantomOptions, make_dataset

pytestmark = pytest.mark.e2e

#: The acceptance bound on the median absolute DVR error over WM voxels (issue 4), exactly.
MEDIAN_ABS_DVR_ERROR_MAX = 0.02
#: True WM probability at or above which a voxel counts as WM.
WM_PROBABILITY_MIN = 0.9
SEED = 20260405
#: Realistic grid (the simulator's own T1w/PET choices), noise-free, without PSF; everything
#: else (misalignment, anatomy deformation, bias field, MR noise, FLAIR) as by default.
PHANTOM_OPTIONS = PhantomOptions(t1w_voxel_mm=(1.5,), pet_voxel_mm=(3.0,), psf_fwhm_mm=0.0, voxel_cov=(0.0, 0.0))
MODELS = ("SRTM", "SRTM2", "Logan")



@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory):
    """(BIDS root, output dir) of the participant level on a noise-free, PSF-free healthy control."""
    base = tmp_path_factory.mktemp("voxel_maps")
    bids = base / "bids"
    make_dataset(bids, 1, "pk11195", seed=SEED, sessions=(), groups=("HC",), options=PHANTOM_OPTIONS)
    out = base / "out"
    result = _run_cli(str(bids), str(out), "participant", "-w", str(base / "work"), *PARTICIPANT_OPTIONS)
    assert result.returncode == 0, result.stderr[-4000:]
    return bids, out


def _truth(bids, pattern: str) -> nib.Nifti1Image:
    return nib.load(_one(bids / "derivatives" / "phantom-truth", f"sub-*/**/{pattern}"))


def _reference_dilution(bids, out, truth: np.ndarray) -> float:
    """True DVR of the pipeline's reference region relative to the pure reference tissue.

    Mean over the pipeline's reference mask of ``sum_k f_k DVR_k`` = true DVR x (p_GM + p_WM)
    (true maps; CSF holds no tracer): 1 for a reference mask of pure cerebellar GM.
    """
    gm = _truth(bids, "*_space-T1w_label-GM_probseg.nii.gz").get_fdata()
    wm = _truth(bids, "*_space-T1w_label-WM_probseg.nii.gz").get_fdata()
    reference = np.asarray(nib.load(_one(out, "sub-*/**/anat/*_label-cerebellumgm_desc-ref_mask.nii.gz")).dataobj) > 0
    content = np.nan_to_num(truth * (gm + wm))
    return float(content[reference].mean())


@pytest.fixture(scope="module")
def errors(phantom_run) -> pd.DataFrame:
    """Median absolute and signed DVR errors over true-WM voxels, one row per model (printed)."""
    bids, out = phantom_run
    truth_img = _truth(bids, "*_space-T1w_desc-truth_dvr.nii.gz")
    truth = np.asarray(truth_img.dataobj, np.float64)
    wm = np.asarray(_truth(bids, "*_space-T1w_label-WM_probseg.nii.gz").get_fdata()) >= WM_PROBABILITY_MIN
    wm &= np.isfinite(truth)
    assert wm.sum() > 10_000, f"only {wm.sum()} true-WM voxels"
    ratio = _reference_dilution(bids, out, truth)
    kinpar = pd.read_csv(_one(bids / "derivatives" / "phantom-truth", "sub-*/**/*_desc-truth_kinpar.tsv"),
                         sep="\t", na_values="n/a").set_index("region")
    rows = []
    for model in MODELS:
        image = nib.load(_one(out, f"sub-*/**/pet/*_space-T1w_model-{model}_meas-DVR_mimap.nii.gz"))
        assert image.shape == truth_img.shape and np.allclose(image.affine, truth_img.affine), model
        dvr = np.asarray(image.dataobj, np.float64)[wm]
        error = dvr - truth[wm]
        assert np.isfinite(error).mean() > 0.99, f"{model}: non-finite DVR in true WM"
        rows.append({"model": model, "median_abs_error": float(np.nanmedian(np.abs(error))),
                     "median_error": float(np.nanmedian(error)),
                     "median_abs_error_reference_rescaled": float(np.nanmedian(np.abs(dvr * ratio - truth[wm])))})
    table = pd.DataFrame(rows).set_index("model")
    print(f"\n{wm.sum()} true-WM voxels (p_WM >= {WM_PROBABILITY_MIN}); true DVR of the pipeline's reference "
          f"region = {ratio:.4f}; truth table wm DVR_perfect - DVR_tissue = "
          f"{kinpar.loc['wm', 'DVR_perfect'] - (1.0 + kinpar.loc['wm', 'BPND_tissue']):+.4f}")
    print(table.round(4).to_string())
    print(json.dumps({"phantom": {"seed": SEED, "t1w_voxel_mm": PHANTOM_OPTIONS.t1w_voxel_mm[0],
                                  "pet_voxel_mm": PHANTOM_OPTIONS.pet_voxel_mm[0]}}))
    return table


@pytest.mark.parametrize("model", MODELS)
def test_wm_dvr_error_against_the_pure_tissue_truth(errors, model):
    """The acceptance bound: median |DVR error| over true-WM voxels against the pure-tissue DVR image."""
    assert errors.loc[model, "median_abs_error"] <= MEDIAN_ABS_DVR_ERROR_MAX, errors.to_string()


@pytest.mark.parametrize("model", MODELS)
def test_wm_dvr_error_without_the_reference_tissue_mix(errors, model):
    """The same bound with the reference region's tissue mix removed (each map times the true DVR of the
    pipeline's reference mask): what the voxel fits, resampling and registration contribute."""
    assert errors.loc[model, "median_abs_error_reference_rescaled"] <= MEDIAN_ABS_DVR_ERROR_MAX, errors.to_string()
