"""Rigid registration against known rigid misalignments (template-based truth)."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic import grid, pet_like, rigid, tissue_image
from tspo_bids.anat.template import load_template
from tspo_bids.registration.coregister import rigid_register
from tspo_bids.registration.transforms import mask_points_world, mean_displacement_mm, resample_to

#: Acceptance for a single rigid registration on these known-truth cases (mm).
MAX_MEAN_DISPLACEMENT_MM = 1.0


@pytest.fixture(scope="module")
def brain_points():
    return mask_points_world(load_template(2).brain_mask)


@pytest.fixture(scope="module")
def t1w_like():
    """T1w contrast (CSF < GM < WM) on a 1.5 mm grid, at the template position."""
    return resample_to(tissue_image((0.25, 0.6, 1.0)), grid(1.5), order=1)


def test_pet_to_t1w_recovers_known_rigid(t1w_like, brain_points):
    motion = rigid((5.0, -3.0, 7.0), (4.0, -6.0, 3.0))
    pet = pet_like(voxel_mm=3.0, motion=motion, noise=0.04)
    matrix = rigid_register(t1w_like, pet, metric="mattes")
    error = mean_displacement_mm(matrix, np.linalg.inv(motion), brain_points)
    assert error < MAX_MEAN_DISPLACEMENT_MM, error


def test_flair_to_t1w_recovers_known_rigid(t1w_like, brain_points):
    motion = rigid((-6.0, 4.0, -3.0), (-5.0, 3.0, 6.0))
    # FLAIR contrast: CSF suppressed, GM brighter than WM; own 1 mm x 1 mm x 3 mm-ish grid
    flair_truth = tissue_image((0.1, 0.8, 0.6))
    flair = resample_to(flair_truth, grid(2.5, margin_mm=6.0), motion, order=1)
    matrix = rigid_register(t1w_like, flair)
    error = mean_displacement_mm(matrix, np.linalg.inv(motion), brain_points)
    assert error < MAX_MEAN_DISPLACEMENT_MM, error


def test_rigid_register_is_deterministic(t1w_like):
    pet = pet_like(voxel_mm=3.0, motion=rigid((2.0, 0.0, 0.0), (1.0, 2.0, 0.0)))
    cheap = dict(shrink_factors=(4, 2), smoothing_sigmas_vox=(2.0, 1.0), iterations=(200, 50))
    first = rigid_register(t1w_like, pet, **cheap)
    second = rigid_register(t1w_like, pet, **cheap)
    np.testing.assert_array_equal(first, second)


def test_unknown_metric_refused(t1w_like):
    with pytest.raises(ValueError, match="metric"):
        rigid_register(t1w_like, t1w_like, metric="cc")
