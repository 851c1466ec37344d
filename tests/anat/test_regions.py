"""The shared region table (tspo_bids.anat.regions): the reference region's CSF margin, closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tspo_bids.anat.regions import (
    REFERENCE_CSF_MARGIN_MM,
    REFERENCE_CSF_MIN,
    REFERENCE_REGION,
    AtlasGroups,
    csf_distance_mm,
    define_regions,
)

SHAPE = (40, 30, 30)


def _cerebellum_block() -> tuple[np.ndarray, np.ndarray, AtlasGroups]:
    """Pure GM everywhere (p_GM = 1) in an atlas cerebellum covering the whole grid but a 2-voxel border."""
    gm = np.ones(SHAPE)
    wm = np.zeros(SHAPE)
    cerebellum = np.zeros(SHAPE, bool)
    cerebellum[2:-2, 2:-2, 2:-2] = True
    empty = np.zeros(SHAPE, bool)
    return gm, wm, AtlasGroups(cerebellum=cerebellum, vermis=empty, thalamus=empty, deepgm=empty)


def test_without_csf_the_reference_is_the_eroded_cerebellar_gm():
    gm, wm, atlas = _cerebellum_block()
    reference = define_regions(gm, wm, atlas, voxel_size_mm=(1.0, 1.0, 1.0))[REFERENCE_REGION]
    np.testing.assert_array_equal(reference, ndimage.binary_erosion(atlas.cerebellum))
    assert np.isinf(csf_distance_mm(gm, wm, (1.0, 1.0, 1.0))).all()


@pytest.mark.parametrize("voxel_size_mm", [(1.0, 1.0, 1.0), (1.5, 1.5, 1.5), (0.8, 1.0, 3.0)])
def test_reference_keeps_the_margin_from_a_sulcus_in_mm(voxel_size_mm):
    """A one-voxel plane of 30 % CSF (a sulcus the segmentation barely sees) at x = 20: reference voxels
    are exactly those farther than the margin (mm) from it, whatever the voxel size."""
    gm, wm, atlas = _cerebellum_block()
    gm[20] = 1.0 - 0.3
    assert 0.3 >= REFERENCE_CSF_MIN
    reference = define_regions(gm, wm, atlas, voxel_size_mm=voxel_size_mm)[REFERENCE_REGION]
    distance_mm = np.abs(np.arange(SHAPE[0]) - 20) * voxel_size_mm[0]
    expected = ndimage.binary_erosion(atlas.cerebellum) & (distance_mm > REFERENCE_CSF_MARGIN_MM)[:, None, None]
    np.testing.assert_array_equal(reference, expected)
    # the GM threshold alone keeps that plane (p_GM = 0.7 >= 0.5): only the margin removes it
    assert not reference[20].any() and ndimage.binary_erosion(atlas.cerebellum)[20].any()


def test_less_csf_than_the_threshold_is_not_a_sulcus():
    gm, wm, atlas = _cerebellum_block()
    gm[20] = 1.0 - 0.5 * REFERENCE_CSF_MIN
    reference = define_regions(gm, wm, atlas, voxel_size_mm=(1.0, 1.0, 1.0))[REFERENCE_REGION]
    np.testing.assert_array_equal(reference, ndimage.binary_erosion(atlas.cerebellum))


def test_wm_is_not_csf():
    """GM + WM mixtures hold no CSF: the margin leaves them in."""
    gm, wm, atlas = _cerebellum_block()
    gm[20], wm[20] = 0.6, 0.4
    reference = define_regions(gm, wm, atlas, voxel_size_mm=(1.0, 1.0, 1.0))[REFERENCE_REGION]
    np.testing.assert_array_equal(reference, ndimage.binary_erosion(atlas.cerebellum))
