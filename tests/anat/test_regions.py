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
    beyond_csf_margin,
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


@pytest.mark.parametrize("voxel_size_mm", [(1.0, 1.0, 1.0), (0.8, 1.2, 2.5)])
def test_margin_in_the_bounding_box_equals_the_whole_grid(voxel_size_mm):
    """The cropped computation gives exactly the whole-grid distance rule, on random tissue maps with
    candidates near the grid edge and far from it."""
    rng = np.random.default_rng(7)
    gm = rng.uniform(0.5, 1.0, SHAPE)
    wm = 1.0 - gm  # no CSF but in the scattered voxels below
    sulci = rng.random(SHAPE) < 0.003
    gm[sulci], wm[sulci] = 0.7, 0.0  # 30 % CSF
    candidates = np.zeros(SHAPE, bool)
    candidates[0:12, 5:20, 3:9] = True
    candidates[30:36, 25:30, 20:28] = True
    expected = candidates & (csf_distance_mm(gm, wm, voxel_size_mm) > REFERENCE_CSF_MARGIN_MM)
    kept = beyond_csf_margin(candidates, gm, wm, voxel_size_mm)
    np.testing.assert_array_equal(kept, expected)
    assert 0 < kept.sum() < candidates.sum()
    assert not beyond_csf_margin(np.zeros(SHAPE, bool), gm, wm, voxel_size_mm).any()
