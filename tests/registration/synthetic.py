"""Known-truth test images built from the offline 2 mm MNI152 template.

Nothing here is estimated: every image is made from the template's tissue maps and
a known rigid matrix, so the registration tests compare against exact truth.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from tspo_bids.anat.template import load_template
from tspo_bids.registration.transforms import mask_points_world, resample_to, rigid_matrix

#: Frame durations (minutes) of a 60-min schedule: 4x15 s, 2x30 s, 3x1, 2x2.5, 10x5 min.
FRAME_DURATION_MIN = np.array([0.25] * 4 + [0.5] * 2 + [1.0] * 3 + [2.5] * 2 + [5.0] * 10)
FRAME_START_MIN = np.concatenate([[0.0], np.cumsum(FRAME_DURATION_MIN)[:-1]])
FRAME_MID_MIN = FRAME_START_MIN + FRAME_DURATION_MIN / 2


def brain_centre_mm() -> np.ndarray:
    """Centre (world mm) of the template brain mask."""
    return mask_points_world(load_template(2).brain_mask).mean(axis=0)


def grid(voxel_mm: float, margin_mm: float = 0.0) -> nib.Nifti1Image:
    """Empty image on an isotropic grid covering the 2 mm template field of view."""
    template = load_template(2).t1
    extent = np.array(template.shape) * 2.0 + 2 * margin_mm
    shape = tuple(int(np.ceil(e / voxel_mm)) for e in extent)
    affine = template.affine.copy()
    affine[:3, :3] = np.diag([voxel_mm] * 3) * np.sign(np.diag(template.affine[:3, :3]))
    affine[:3, 3] = template.affine[:3, 3] - np.sign(np.diag(template.affine[:3, :3])) * margin_mm
    return nib.Nifti1Image(np.zeros(shape, np.float32), affine)


def tissue_image(weights: tuple[float, float, float], fwhm_mm: float = 0.0) -> nib.Nifti1Image:
    """Template-space image ``w_csf*CSF + w_gm*GM + w_wm*WM`` (optionally blurred)."""
    t = load_template(2)
    data = sum(w * np.asarray(img.dataobj, np.float32) for w, img in zip(weights, (t.csf, t.gm, t.wm)))
    if fwhm_mm > 0:
        data = ndimage.gaussian_filter(data, fwhm_mm / 2.3548 / 2.0)
    return nib.Nifti1Image(data.astype(np.float32), t.t1.affine)


def pet_like(
    voxel_mm: float = 3.0, motion: np.ndarray | None = None, noise: float = 0.04, seed: int = 0
) -> nib.Nifti1Image:
    """A 3D PET-like image (GM > WM > CSF, 5 mm FWHM) on a coarse grid.

    ``motion`` (world matrix ``B``) moves the object: the returned image has at world
    point ``y`` the truth value at ``B @ y``; the image-to-truth pull-back is ``inv(B)``.
    """
    truth = tissue_image((0.15, 1.0, 0.55), fwhm_mm=5.0)
    image = resample_to(truth, grid(voxel_mm, margin_mm=10.0), motion)
    data = image.get_fdata(dtype=np.float32)
    rng = np.random.default_rng(seed)
    data += rng.normal(0.0, noise * data.max(), data.shape).astype(np.float32)
    return nib.Nifti1Image(data, image.affine)


def dynamic_pet(
    frame_motion: dict[int, np.ndarray], voxel_mm: float = 3.0, seed: int = 0
) -> nib.Nifti1Image:
    """A 21-frame PET series whose frame ``k`` is moved by ``frame_motion[k]``.

    Blood dominates the first minute, GM/WM contrast grows later; noise scales as
    ``sqrt(value / duration)`` (counting statistics).
    """
    t = FRAME_MID_MIN
    blood = 8.0 * t * np.exp(-t / 0.4) + 0.3 * np.exp(-t / 30)
    gm = 1.0 * (1 - np.exp(-t / 2.0)) * np.exp(-t / 80)
    wm = 0.6 * (1 - np.exp(-t / 4.0)) * np.exp(-t / 80)
    csf = 0.1 * (1 - np.exp(-t / 5.0))
    rng = np.random.default_rng(seed)
    frames = []
    target = grid(voxel_mm, margin_mm=10.0)
    for k in range(t.size):
        truth = tissue_image((csf[k] + 0.05 * blood[k], gm[k] + 0.05 * blood[k], wm[k] + 0.03 * blood[k]), 5.0)
        data = resample_to(truth, target, frame_motion.get(k)).get_fdata(dtype=np.float32)
        sd = 0.03 * np.sqrt(np.clip(data, 0, None) / FRAME_DURATION_MIN[k] + 0.05)
        frames.append(data + rng.normal(0, 1, data.shape).astype(np.float32) * sd)
    image = nib.Nifti1Image(np.stack(frames, -1).astype(np.float32), target.affine)
    image.header.set_xyzt_units("mm", "sec")
    return image


def rigid(rotation_deg, translation_mm) -> np.ndarray:
    """Rigid matrix about the brain centre."""
    return rigid_matrix(rotation_deg, translation_mm, brain_centre_mm())
