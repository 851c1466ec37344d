"""T1w preprocessing with antspyx: N4 bias correction, template registration,
brain mask and three-class tissue segmentation.

Inputs and outputs are nibabel images (paths are accepted too) on the T1w grid;
template-to-T1w transforms are ANTs files listed in a :class:`TemplateTransforms`.

Brain masking. The template (:func:`tspo_bids.anat.template.load_template`) is a
brain-only MNI152 T1. :func:`brain_mask_from_template` registers it to the T1w
(affine + SyN, Mattes MI) and warps the template brain mask; on a brain-only T1w
(the digital phantom, or a skull-stripped input) the mask is further restricted to
non-zero voxels. On a skull-on T1w the same warp acts as template-based brain
extraction (as in antsBrainExtraction, without its refinement stages): MI aligns the
template brain with the T1w brain, but skull and dura pull the affine stage, so the
mask is expected to be off by a few mm at the surface; a second
:func:`register_template_to_t1w` with ``brain_mask`` given (T1w masked, metric
restricted to the dilated mask) should tighten it. This has not been validated on
skull-on data: the phantom and the tests are brain-only.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from tspo_bids.anat.template import Template, load_template
from tspo_bids.registration.transforms import (
    DEFAULT_RANDOM_SEED,
    ants_random_seed,
    ants_to_nifti,
    as_nifti,
    nifti_to_ants,
    private_tempdir,
    set_ants_threads,
)

#: dseg label values (BIDS-style tissue segmentation), also Atropos' class order on T1w.
DSEG_LABELS: dict[str, int] = {"csf": 1, "gm": 2, "wm": 3}


@dataclass(frozen=True)
class TemplateTransforms:
    """ANTs transform files between the template and the T1w.

    Attributes
    ----------
    template_to_t1w : tuple of str
        Transform list for ``ants.apply_transforms(fixed=T1w, moving=template, ...)``
        (warp first, then affine, as ANTs lists them).
    t1w_to_template : tuple of str
        Transform list for the inverse direction.
    t1w_to_template_invert : tuple of bool
        ``whichtoinvert`` flags matching ``t1w_to_template``.
    """

    template_to_t1w: tuple[str, ...]
    t1w_to_template: tuple[str, ...]
    t1w_to_template_invert: tuple[bool, ...]


# ----------------------------------------------------------------------- N4
def n4_bias_correct(
    t1w_img: nib.spatialimages.SpatialImage | str,
    mask: nib.spatialimages.SpatialImage | str | None = None,
    shrink_factor: int = 4,
    n_threads: int = 1,
) -> nib.Nifti1Image:
    """N4 bias-field correction of a T1w image.

    Parameters
    ----------
    t1w_img : nibabel image or path, 3D
    mask : nibabel image or path, optional
        Voxels used to fit the bias field (default: the head, voxels above 1 % of
        the 99th intensity percentile with holes filled).
    shrink_factor : int
        Downsampling used for the fit (the field is smooth; 4 keeps it fast).
    n_threads : int
        ITK threads.

    Returns
    -------
    nibabel.Nifti1Image, float32
        Bias-corrected image on the T1w grid (arbitrary units, same scale as input;
        0 outside the mask).
    """
    import ants

    set_ants_threads(n_threads)
    t1w = as_nifti(t1w_img)
    data = np.asarray(t1w.dataobj, dtype=np.float32)
    fit_mask = head_mask(data) if mask is None else np.asarray(as_nifti(mask).dataobj) > 0
    image = nifti_to_ants(t1w, np.clip(data, 0, None))
    mask_ants = nifti_to_ants(t1w, fit_mask.astype(np.float32))
    corrected = ants.n4_bias_field_correction(
        image, mask=mask_ants, shrink_factor=int(shrink_factor),
        convergence={"iters": [50, 50, 30, 20], "tol": 1e-7},
    )
    out = corrected.numpy().astype(np.float32) * fit_mask
    # keep the input's overall scale inside the mask
    inside = fit_mask & (data > 0)
    if inside.any() and np.median(out[inside]) > 0:
        out *= np.median(data[inside]) / np.median(out[inside])
    return _like(t1w, out)


def head_mask(data: np.ndarray) -> np.ndarray:
    """Voxels above 1 % of the 99th percentile of positive values, holes filled."""
    positive = data[data > 0]
    if positive.size == 0:
        return np.zeros(data.shape, bool)
    return ndimage.binary_fill_holes(data > 0.01 * np.percentile(positive, 99))


# -------------------------------------------------------- template to T1w
def register_template_to_t1w(
    t1w_img: nib.spatialimages.SpatialImage | str,
    template: Template | None = None,
    brain_mask: nib.spatialimages.SpatialImage | str | None = None,
    out_dir: str | Path | None = None,
    registration_voxel_mm: float = 2.0,
    transform: str = "SyN",
    n_threads: int = 1,
    random_seed: int | None = DEFAULT_RANDOM_SEED,
) -> TemplateTransforms:
    """Register the MNI152 template to the T1w (affine + SyN, Mattes MI).

    Parameters
    ----------
    t1w_img : nibabel image or path
        Bias-corrected T1w.
    template : Template, optional
        Default :func:`~tspo_bids.anat.template.load_template` (2 mm).
    brain_mask : nibabel image or path, optional
        T1w brain mask: the T1w is masked (to match the brain-only template) and
        the metric restricted to the dilated mask.
    out_dir : path, optional
        Folder for the transform files (created; default: a new temporary folder
        that the caller owns).
    registration_voxel_mm : float
        The T1w is resampled to this voxel size for the optimisation only (the
        transforms live in world space and apply to the full-resolution grid).
    transform : str
        antspyx ``type_of_transform`` ("SyN", or "Affine" for a linear-only map).
    n_threads : int
        ITK threads.
    random_seed : int or None
        Seed of the affine metric sampling.

    Returns
    -------
    TemplateTransforms
    """
    import ants

    set_ants_threads(n_threads)
    template = template or load_template(2)
    t1w = as_nifti(t1w_img)
    data = np.asarray(t1w.dataobj, dtype=np.float32)
    mask = None
    if brain_mask is not None:
        mask = np.asarray(as_nifti(brain_mask).dataobj) > 0
        data = data * mask
    fixed = nifti_to_ants(t1w, data)
    if registration_voxel_mm and min(t1w.header.get_zooms()[:3]) < registration_voxel_mm:
        fixed = ants.resample_image(fixed, (registration_voxel_mm,) * 3, use_voxels=False, interp_type=0)
    moving = nifti_to_ants(template.t1)
    extra = {}
    if mask is not None:
        dilated = ndimage.binary_dilation(mask, iterations=2).astype(np.float32)
        mask_ants = ants.resample_image_to_target(nifti_to_ants(t1w, dilated), fixed, interp_type="nearestNeighbor")
        extra["mask"] = mask_ants

    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="tspo_template_"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tspo_syn_") as work, ants_random_seed(random_seed):
        result = ants.registration(
            fixed, moving, type_of_transform=transform, outprefix=str(Path(work) / "tpl_"),
            aff_metric="mattes", syn_metric="mattes", reg_iterations=(40, 20, 0), **extra,
        )
        fwd = [_keep(p, out) for p in result["fwdtransforms"]]
        inv = [_keep(p, out) for p in result["invtransforms"]]
    invert = tuple(p.endswith(".mat") for p in inv)
    return TemplateTransforms(tuple(fwd), tuple(inv), invert)


def _keep(path: str, out_dir: Path) -> str:
    target = out_dir / ("from-template_to-T1w_" + Path(path).name.removeprefix("tpl_"))
    shutil.copyfile(path, target)
    return str(target)


def warp_to_t1w(
    image: nib.spatialimages.SpatialImage | str,
    t1w_img: nib.spatialimages.SpatialImage | str,
    transforms: TemplateTransforms,
    interpolation: str = "linear",
) -> nib.Nifti1Image:
    """Warp a template-space image (e.g. a tissue prior) onto the T1w grid.

    Parameters
    ----------
    image : nibabel image or path
        Image on the template grid.
    t1w_img : nibabel image or path
        Supplies the output grid.
    transforms : TemplateTransforms
        From :func:`register_template_to_t1w`.
    interpolation : str
        ANTs interpolator ("linear", "bSpline", "nearestNeighbor", "genericLabel").

    Returns
    -------
    nibabel.Nifti1Image, float32, on the T1w grid
    """
    import ants

    t1w, moving = as_nifti(t1w_img), as_nifti(image)
    warped = ants.apply_transforms(
        fixed=nifti_to_ants(t1w, np.zeros(t1w.shape[:3], np.float32)),
        moving=nifti_to_ants(moving),
        transformlist=list(transforms.template_to_t1w),
        interpolator=interpolation,
    )
    return ants_to_nifti(warped, like=t1w)


def warp_labels_to_t1w(
    labels: nib.spatialimages.SpatialImage | str,
    t1w_img: nib.spatialimages.SpatialImage | str,
    transforms: TemplateTransforms,
) -> nib.Nifti1Image:
    """Warp an atlas label image onto the T1w grid (ANTs ``genericLabel``).

    Returns
    -------
    nibabel.Nifti1Image, int16 labels on the T1w grid (0 outside the atlas)
    """
    warped = warp_to_t1w(labels, t1w_img, transforms, interpolation="genericLabel")
    data = np.rint(np.asarray(warped.dataobj)).astype(np.int16)
    return _like(as_nifti(t1w_img), data, np.int16)


def brain_mask_from_template(
    t1w_img: nib.spatialimages.SpatialImage | str,
    template: Template | None = None,
    out_dir: str | Path | None = None,
    n_threads: int = 1,
    random_seed: int | None = DEFAULT_RANDOM_SEED,
) -> tuple[nib.Nifti1Image, TemplateTransforms]:
    """Brain mask from the template brain mask warped to the T1w.

    Parameters
    ----------
    t1w_img : nibabel image or path
        Bias-corrected T1w.
    template : Template, optional
        Default 2 mm MNI152.
    out_dir : path, optional
        Folder for the transform files.
    n_threads, random_seed
        As :func:`register_template_to_t1w`.

    Returns
    -------
    mask : nibabel.Nifti1Image (uint8) on the T1w grid
        Warped template mask (linear, >= 0.5), intersected with the T1w head
        (non-background voxels), largest connected component, holes filled.
    transforms : TemplateTransforms
        The template-to-T1w registration used (reusable for labels and priors).
    """
    template = template or load_template(2)
    t1w = as_nifti(t1w_img)
    transforms = register_template_to_t1w(
        t1w, template, None, out_dir=out_dir, n_threads=n_threads, random_seed=random_seed
    )
    warped = np.asarray(warp_to_t1w(template.brain_mask, t1w, transforms).dataobj) >= 0.5
    data = np.asarray(t1w.dataobj, dtype=np.float32)
    mask = warped & head_mask(data)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    mask = ndimage.binary_fill_holes(mask)
    return _like(t1w, mask.astype(np.uint8), np.uint8), transforms


def template_priors(
    t1w_img: nib.spatialimages.SpatialImage | str,
    transforms: TemplateTransforms,
    template: Template | None = None,
) -> dict[str, nib.Nifti1Image]:
    """Template CSF/GM/WM probability maps warped (linear) to the T1w grid.

    Returns
    -------
    dict with keys "csf", "gm", "wm": float32 images on the T1w grid, for
    :func:`segment_tissues` ``priors``.
    """
    template = template or load_template(2)
    return {name: warp_to_t1w(getattr(template, name), t1w_img, transforms) for name in DSEG_LABELS}


# ------------------------------------------------------------- segmentation
def segment_tissues(
    t1w_img: nib.spatialimages.SpatialImage | str,
    brain_mask: nib.spatialimages.SpatialImage | str,
    priors: dict[str, nib.spatialimages.SpatialImage] | None = None,
    prior_weight: float = 0.25,
    mrf_weight: float = 0.1,
    n_iterations: int = 5,
    n_threads: int = 1,
) -> dict[str, nib.Nifti1Image]:
    """Three-class (CSF, GM, WM) segmentation of a T1w with ANTs Atropos.

    Parameters
    ----------
    t1w_img : nibabel image or path
        Bias-corrected T1w.
    brain_mask : nibabel image or path
        Only these voxels are classified.
    priors : dict with keys "csf", "gm", "wm", optional
        Tissue probability maps on the T1w grid (e.g. template priors through
        :func:`warp_to_t1w`). Without priors Atropos starts from k-means.
    prior_weight : float
        Weight of the priors in the posterior (0-1; used only with ``priors``).
    mrf_weight : float
        Markov random field smoothing weight (neighbourhood 1 voxel).
    n_iterations : int
        Maximum EM iterations.
    n_threads : int
        ITK threads.

    Returns
    -------
    dict
        ``"csf"``, ``"gm"``, ``"wm"``: posterior probability images (float32, 0
        outside the mask); ``"dseg"``: labels (uint8) 1 CSF, 2 GM, 3 WM, 0 outside.
    """
    import ants

    set_ants_threads(n_threads)
    t1w = as_nifti(t1w_img)
    mask = np.asarray(as_nifti(brain_mask).dataobj) > 0
    if not mask.any():
        raise ValueError("brain mask is empty")
    data = np.asarray(t1w.dataobj, dtype=np.float32)
    image = nifti_to_ants(t1w, data * mask)
    mask_ants = nifti_to_ants(t1w, mask.astype(np.float32))
    if priors is None:
        init = "Kmeans[3]"
        weight = 0.0
    else:
        init = [nifti_to_ants(t1w, np.asarray(as_nifti(priors[name]).dataobj, np.float32) * mask)
                for name in ("csf", "gm", "wm")]
        weight = float(prior_weight)
    with private_tempdir():  # ants.atropos leaves its probability files in $TMPDIR
        result = ants.atropos(
            a=image, x=mask_ants, i=init, m=f"[{mrf_weight:g},1x1x1]",
            c=f"[{int(n_iterations)},0]", priorweight=weight,
            r=0,  # --use-random-seed 0: a constant seed, so k-means (and every later step) is reproducible
        )
        probabilities = [p.numpy().astype(np.float32) * mask for p in result["probabilityimages"]]
    # Atropos orders k-means classes by mean intensity (T1w: CSF < GM < WM) and
    # prior classes as given (csf, gm, wm): class index + 1 is the dseg label.
    stack = np.stack(probabilities, axis=-1)
    dseg = np.where(mask, np.argmax(stack, axis=-1) + 1, 0).astype(np.uint8)
    out = {name: _like(t1w, probabilities[label - 1]) for name, label in DSEG_LABELS.items()}
    out["dseg"] = _like(t1w, dseg, np.uint8)
    return out


def _like(reference: nib.spatialimages.SpatialImage, data: np.ndarray, dtype=np.float32) -> nib.Nifti1Image:
    out = nib.Nifti1Image(np.asarray(data, dtype=dtype), reference.affine)
    out.header.set_xyzt_units("mm")
    return out
