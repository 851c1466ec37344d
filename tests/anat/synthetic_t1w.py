"""A known-truth T1w built from the template tissue maps (no anatomy estimated).

Intensity ``0.25 CSF + 0.6 GM + 1.0 WM`` (T1w contrast) at 1.5 mm, moved by a known
rigid matrix, a smooth multiplicative bias field (about 0.6-1.3 over the brain) and Gaussian noise; the
true WM map is the template WM probability moved the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

from tspo_bids.anat.template import load_template
from tspo_bids.registration.transforms import mask_points_world, resample_to, rigid_matrix


@dataclass(frozen=True)
class SyntheticT1w:
    t1w: nib.Nifti1Image
    bias: nib.Nifti1Image
    wm_true: nib.Nifti1Image
    gm_true: nib.Nifti1Image
    brain_true: nib.Nifti1Image
    motion: np.ndarray


def make_t1w(voxel_mm: float = 1.5, noise: float = 0.03, seed: int = 0) -> SyntheticT1w:
    t = load_template(2)
    centre = mask_points_world(t.brain_mask).mean(axis=0)
    motion = rigid_matrix((4.0, -3.0, 5.0), (3.0, -4.0, 2.0), centre)
    shape = tuple(int(np.ceil(s * 2.0 / voxel_mm)) for s in t.t1.shape)
    affine = t.t1.affine.copy()
    affine[:3, :3] *= voxel_mm / 2.0
    grid = nib.Nifti1Image(np.zeros(shape, np.float32), affine)

    def moved(img, order=1):
        return resample_to(img, grid, motion, order=order).get_fdata(dtype=np.float32)

    csf, gm, wm = moved(t.csf), moved(t.gm), moved(t.wm)
    brain = moved(t.brain_mask.__class__(np.asarray(t.brain_mask.dataobj, np.float32), t.t1.affine)) >= 0.5
    ijk = np.indices(shape, dtype=np.float32) / np.array(shape, np.float32)[:, None, None, None]
    bias = 1.0 + 0.4 * (2 * ijk[0] - 1) + 0.3 * (2 * ijk[2] - 1) * np.cos(2.0 * ijk[1])
    rng = np.random.default_rng(seed)
    clean = (0.25 * csf + 0.6 * gm + 1.0 * wm) * brain
    data = clean * bias + rng.normal(0.0, noise, shape).astype(np.float32) * brain
    data = np.clip(data, 0, None) * 1000.0

    def img(a, dtype=np.float32):
        out = nib.Nifti1Image(np.asarray(a, dtype=dtype), affine)
        out.header.set_xyzt_units("mm")
        return out

    return SyntheticT1w(img(data), img(bias), img(wm), img(gm), img(brain, np.uint8), motion)
