"""Partial-volume fractions: the mixel model recovers known tissue means and fractions."""

import numpy as np
import pytest
from scipy import ndimage

from tspo_bids.anat.pve import fit_mixel_model, partial_volume_fractions

TRUE_MEANS = (35.0, 95.0, 150.0)
NOISE_SD = 6.0


def _phantom(seed=0, shape=(64, 64, 64)):
    """Smooth random tissue fractions (sum 1) and a T1w made from them with noise."""
    rng = np.random.default_rng(seed)
    fields = [ndimage.gaussian_filter(rng.normal(size=shape), 3.0) for _ in range(3)]
    fields[0] -= 0.02  # less CSF than GM/WM, as in a brain
    labels = np.argmax(np.stack(fields), axis=0)
    fractions = np.stack([ndimage.gaussian_filter((labels == k).astype(float), 0.8) for k in range(3)])
    fractions /= fractions.sum(axis=0)
    t1w = np.tensordot(TRUE_MEANS, fractions, axes=1) + rng.normal(0, NOISE_SD, shape)
    return t1w, fractions


def test_mixel_model_recovers_pure_class_means():
    t1w, _ = _phantom()
    model = fit_mixel_model(t1w.ravel())
    np.testing.assert_allclose(model.means, TRUE_MEANS, atol=4.0)
    assert model.sigma == pytest.approx(NOISE_SD, rel=0.35)
    assert sum(model.weights) == pytest.approx(1.0)


def test_fractions_match_truth_and_sum_to_one():
    t1w, truth = _phantom(seed=1)
    mask = np.ones(t1w.shape, bool)
    mask[:2] = False
    fractions = partial_volume_fractions(t1w, mask, fit_mixel_model(t1w[mask]))
    total = fractions["csf"] + fractions["gm"] + fractions["wm"]
    np.testing.assert_allclose(total[mask], 1.0, atol=1e-6)
    assert np.all(total[~mask] == 0)
    # Per-voxel fraction noise is sigma / (mean difference) ~ 6 / 55 ~ 0.11: the mean absolute
    # error may not exceed that noise-propagation bound (no regularisation is applied).
    noise_bound = NOISE_SD / min(np.diff(TRUE_MEANS))
    for k, name in enumerate(("csf", "gm", "wm")):
        error = np.abs(fractions[name][mask] - truth[k][mask]).mean()
        assert error <= noise_bound, (name, error, noise_bound)
    # the >= 0.5 masks the regions use agree with the true >= 0.5 masks (measured 0.89, 0.91, 0.96)
    for k, name in enumerate(("csf", "gm", "wm")):
        est, true = fractions[name] >= 0.5, truth[k] >= 0.5
        dice = 2 * np.sum(est & true & mask) / (np.sum(est & mask) + np.sum(true & mask))
        assert dice >= 0.88, (name, dice)


def test_too_few_voxels():
    with pytest.raises(ValueError, match="too few"):
        fit_mixel_model(np.arange(10.0))
