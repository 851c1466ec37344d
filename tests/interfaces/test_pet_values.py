"""PET series values that registration and the models cannot use are named before preprocessing goes on."""

from __future__ import annotations

import numpy as np
import pytest

from tspo_bids.errors import InputError
from tspo_bids.interfaces.pet import check_pet_values


def test_finite_series_passes():
    series = np.random.default_rng(0).random((4, 4, 4, 5)).astype(np.float32)
    series[..., 0] = 0.0  # a frame before the tracer arrives may be all zero
    check_pet_values(series, "pet.nii.gz")


def test_non_finite_values_are_listed_by_frame():
    series = np.ones((4, 4, 4, 5), np.float32)
    series[0, 0, 0, 2] = np.nan
    series[1, :, 0, 2] = np.inf
    series[0, 0, 1, 4] = np.nan
    with pytest.raises(InputError) as caught:
        check_pet_values(series, "sub-01_pet.nii.gz")
    assert str(caught.value).startswith("sub-01_pet.nii.gz: NaN or infinite values in frame(s) 3 (5), 5 (1) ")


def test_all_zero_series():
    with pytest.raises(InputError, match=r"sub-01_pet.nii.gz: every voxel of every frame is 0"):
        check_pet_values(np.zeros((4, 4, 4, 3), np.float32), "sub-01_pet.nii.gz")
