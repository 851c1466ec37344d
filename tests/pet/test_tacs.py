"""Regional TACs: exact means of known piecewise-constant images."""

import numpy as np
import pytest

from tspo_bids.pet.tacs import regional_tacs


def test_regional_means_are_exact():
    rng = np.random.default_rng(0)
    series = np.zeros((6, 5, 4, 3))
    left = np.zeros((6, 5, 4), bool)
    left[:3] = True
    series[left] = [1.0, 2.0, 3.0]
    series[~left] = [10.0, 20.0, 30.0]
    noise = rng.normal(0, 1, series.shape)
    noise -= noise[left].mean(axis=0)  # zero-mean inside the left region, frame by frame
    series_noisy = series.copy()
    series_noisy[left] += noise[left]
    tacs = regional_tacs(series_noisy, {"left": left, "right": ~left})
    np.testing.assert_allclose(tacs["left"], [1.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(tacs["right"], [10.0, 20.0, 30.0], atol=1e-12)


def test_empty_region_gives_nan_and_shape_mismatch_raises():
    series = np.ones((2, 2, 2, 4))
    tacs = regional_tacs(series, {"empty": np.zeros((2, 2, 2), bool)})
    assert np.isnan(tacs["empty"]).all() and tacs["empty"].shape == (4,)
    with pytest.raises(ValueError, match="shape"):
        regional_tacs(series, {"bad": np.ones((3, 2, 2), bool)})
