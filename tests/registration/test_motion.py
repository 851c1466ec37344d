"""Frame-wise motion correction: known synthetic motion and motion-free series."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from synthetic import FRAME_DURATION_MIN, FRAME_MID_MIN, FRAME_START_MIN, dynamic_pet, rigid
from tspo_bids.anat.template import load_template
from tspo_bids.errors import InputError
from tspo_bids.registration.motion import frame_displacement_mm, motion_correct
from tspo_bids.registration.transforms import mask_points_world, mean_displacement_mm

#: frame index -> true motion (frames 2 is early/unregistered; 19 is in the reference window)
MOTION = {
    2: rigid((3.0, 0.0, 0.0), (2.0, 0.0, 0.0)),
    7: rigid((0.0, 2.0, -3.0), (1.0, -3.0, 2.0)),
    10: rigid((4.0, -2.0, 1.0), (-3.0, 2.0, 1.0)),
    14: rigid((-2.0, 3.0, 2.0), (2.0, 2.0, -3.0)),
    19: rigid((1.0, 1.0, -2.0), (-1.0, 2.0, 2.0)),
}
STATIC_FRAME = 12  # not moved: anchors the (arbitrary) reference position


@pytest.fixture(scope="module")
def brain_points():
    return mask_points_world(load_template(2).brain_mask)


def test_known_motion_recovered(brain_points):
    pet = dynamic_pet(MOTION, voxel_mm=4.0)
    corrected, matrices, reference = motion_correct(pet, FRAME_MID_MIN, FRAME_DURATION_MIN)
    assert corrected.shape == pet.shape and reference.shape == pet.shape[:3]
    assert len(matrices) == pet.shape[3]
    # The reference is a mean of frames, so its position is defined up to a common
    # rigid offset: compare every frame's transform relative to an unmoved frame.
    anchor = np.linalg.inv(matrices[STATIC_FRAME])
    registered = np.flatnonzero(FRAME_START_MIN >= 2.0)
    errors = {
        int(k): mean_displacement_mm(matrices[k] @ anchor, np.linalg.inv(MOTION.get(int(k), np.eye(4))), brain_points)
        for k in registered
    }
    assert max(errors.values()) < 1.0, errors
    # early frames take the transform of the nearest registered frame
    for k in np.flatnonzero(FRAME_START_MIN < 2.0):
        np.testing.assert_array_equal(matrices[k], matrices[registered[0]])
    displacement = frame_displacement_mm(matrices, reference)
    moved = [k for k in MOTION if k in registered]
    assert all(displacement[k] > 2.0 for k in moved), displacement


def test_motion_free_series_is_left_alone(brain_points):
    pet = dynamic_pet({}, voxel_mm=4.0)
    corrected, matrices, _ = motion_correct(pet, FRAME_MID_MIN, FRAME_DURATION_MIN, n_passes=1)
    displacement = [mean_displacement_mm(m, np.eye(4), brain_points) for m in matrices]
    assert max(displacement) < 0.3, displacement
    data, out = pet.get_fdata(), corrected.get_fdata()
    inside = data[..., -1] > 0.2 * data[..., -1].max()
    # resampling by a sub-voxel shift changes values by far less than the frame noise
    assert np.median(np.abs(out[inside, -1] - data[inside, -1])) < 0.05 * data[inside, -1].mean()


def test_timing_mismatch_is_an_input_error():
    pet = nib.Nifti1Image(np.ones((8, 8, 8, FRAME_MID_MIN.size), np.float32), np.eye(4))
    with pytest.raises(InputError, match="21 frames"):
        motion_correct(pet, FRAME_MID_MIN[:-1], FRAME_DURATION_MIN[:-1])
    with pytest.raises(InputError, match="no PET frame starts"):
        motion_correct(pet, FRAME_MID_MIN, FRAME_DURATION_MIN, min_frame_start_min=100.0)
