"""DefineRegions: the region masks of the shared table, and a clear error when the reference region is empty."""

import nibabel as nib
import numpy as np
import pytest

from tspo_bids.anat.template import AAL_LABEL_GROUPS
from tspo_bids.errors import InputError
from tspo_bids.interfaces.anat import DefineRegions

SHAPE = (24, 24, 24)


def _files(tmp_path, gm: np.ndarray) -> dict[str, str]:
    """A cube of atlas cerebellum (first cerebellar label) in pure GM (``gm``), WM elsewhere; 1.5 mm voxels."""
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    atlas = np.zeros(SHAPE, np.int16)
    atlas[4:20, 4:20, 4:20] = AAL_LABEL_GROUPS["cerebellum"][0]
    files = {}
    for name, data in (("gm", gm), ("wm", np.clip(1.0 - gm, 0, 1) * (gm > 0.99)), ("atlas", atlas),
                       ("brain", np.ones(SHAPE))):
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), str(path))
        files[name] = str(path)
    return files


def _run(files):
    node = DefineRegions(gm_prob=files["gm"], wm_prob=files["wm"], atlas_labels=files["atlas"],
                         brain_mask=files["brain"])
    return node.run().outputs


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Nipype writes the node's files in the working directory


def test_reference_mask_is_written(tmp_path):
    outputs = _run(_files(tmp_path, np.ones(SHAPE)))
    reference = np.asarray(nib.load(outputs.reference_mask).dataobj) > 0
    assert reference.sum() == 14 ** 3  # the 16^3 cube eroded by one voxel; no CSF anywhere


def test_empty_reference_region_is_a_clear_input_error(tmp_path):
    """GM with 30 % CSF in every other slice: no cerebellar voxel is 2 mm from CSF."""
    gm = np.ones(SHAPE)
    gm[::2] = 0.7
    files = _files(tmp_path, gm)
    with pytest.raises(InputError, match=r"gm\.nii\.gz: the reference region \(cerebellumgm.*is empty"):
        _run(files)
