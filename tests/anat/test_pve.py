"""Partial-volume fractions: the mixel model recovers known tissue means and fractions."""

import numpy as np
import pytest
from scipy import ndimage

from tspo_bids.anat.pve import fit_mixel_model, partial_volume_fractions

TRUE_MEANS = (35.0, 95.0, 150.0)
NOISE_SD = 6.0


def _phantom(seed=0, shape=(64, 64, 64)):
    """Layered random tissues (CSF | GM | WM, as cortex is), their fractions and a noisy T1w.

    Thresholds of one smooth random field make CSF touch only GM and GM touch WM, the
    adjacency the mixel model assumes; fractions are the labels blurred (sum 1).
    """
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), 4.0)
    labels = np.digitize(field, np.quantile(field, [0.15, 0.55]))
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
    # In truly mixed voxels unmixing is unbiased (noise cannot be clipped there).
    for k, name in enumerate(("csf", "gm", "wm")):
        mixed = mask & (truth[k] > 0.25) & (truth[k] < 0.75)
        bias = (fractions[name] - truth[k])[mixed].mean()
        assert abs(bias) <= 0.02, (name, bias)  # measured <= 0.012
    # the >= 0.5 masks the regions use agree with the true >= 0.5 masks 
    for k, name in enumerate(("csf", "gm", "wm")):
        est, true = fractions[name] >= 0.5, truth[k] >= 0.5
        dice = 2 * np.sum(est & true & mask) / (np.sum(est & mask) + np.sum(true & mask))
        assert dice >= 0.95, (name, dice)  # measured >= 0.97


def test_too_few_voxels():
    with pytest.raises(ValueError, match="too few"):
        fit_mixel_model(np.arange(10.0))
