"""GTM against known truth: a piecewise-constant phantom blurred with a known PSF."""

import logging

import numpy as np
import pytest
from pvc_phantom import PSF_FWHM_MM, REGION_NAMES, VOXEL_MM

from tspo_bids.errors import InputError
from tspo_bids.pvc import (
    gaussian_psf_blur,
    gtm_condition_number,
    gtm_correct,
    gtm_matrix,
    gtm_regional,
    partition_regions,
    regional_means,
    roi_partition_weights,
    synthetic_image,
)

TARGETS = [REGION_NAMES.index(name) for name in ("thalamus", "cortex", "wm")]


def test_regional_means_match_direct_means(phantom):
    rng = np.random.default_rng(0)
    series = rng.random(phantom.labels.shape + (3,))
    means = regional_means(series, phantom.labels)
    for index, name in enumerate(REGION_NAMES):
        np.testing.assert_allclose(means[index], series[phantom.labels == index + 1].mean(axis=0), rtol=1e-12)
    # nibabel hands out Fortran-ordered arrays; float32 is summed in float64
    np.testing.assert_allclose(regional_means(np.asfortranarray(series), phantom.labels), means, rtol=1e-12)
    single = series.astype(np.float32)
    np.testing.assert_allclose(regional_means(single, phantom.labels),
                               regional_means(single.astype(np.float64), phantom.labels), rtol=1e-12)
    np.testing.assert_allclose(regional_means(series[..., 1], phantom.labels), means[:, 1:2], rtol=1e-12)


def test_uncorrected_means_are_biased(phantom):
    # guards the other tests: without correction the phantom reads far from its truth
    observed = regional_means(phantom.blurred_series, phantom.labels)
    relative = observed / phantom.truth - 1
    assert np.all(relative[REGION_NAMES.index("cortex")] < -0.2)
    assert np.all(relative[REGION_NAMES.index("thalamus")] < -0.01)
    assert np.all(relative[REGION_NAMES.index("csf")] > 1.0)


def test_gtm_recovers_truth_noise_free(phantom):
    observed = regional_means(phantom.blurred_series, phantom.labels)
    exact = gtm_correct(observed, gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM, dtype=np.float64))
    np.testing.assert_allclose(exact, phantom.truth, rtol=1e-6)
    # the float32 default (benchmark path) loses only single-precision rounding
    single = gtm_correct(observed, gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM))
    np.testing.assert_allclose(single, phantom.truth, rtol=1e-5)
    # the one-call form carries what sidecars need
    result = gtm_regional(phantom.blurred_series, phantom.labels, [PSF_FWHM_MM] * 3, VOXEL_MM, dtype=np.float64)
    np.testing.assert_allclose(result.corrected, phantom.truth, rtol=1e-6)
    np.testing.assert_allclose(result.observed, observed, rtol=1e-12)
    assert result.psf_fwhm_mm == (PSF_FWHM_MM,) * 3 and result.condition_number > 1.0
    np.testing.assert_array_equal(result.region_voxels, np.bincount(phantom.labels.ravel())[1:])
    # one frame as a 1D vector
    np.testing.assert_allclose(
        gtm_correct(observed[:, 2], gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM, dtype=np.float64)),
        phantom.truth[:, 2], rtol=1e-6)


def test_gtm_matrix_properties(phantom, caplog):
    matrix = gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM, dtype=np.float64)
    assert matrix.shape == (5, 5) and np.all(matrix >= 0)
    # regions deep inside the fully partitioned head gather exactly unit mass
    for name in ("thalamus", "wm"):
        assert matrix[REGION_NAMES.index(name)].sum() == pytest.approx(1.0, abs=1e-9)
    # the blurred-mask shortcut (cropped boxes) equals blurring whole images
    whole = gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM, dtype=np.float64,
                       forward=lambda image: gaussian_psf_blur(image, PSF_FWHM_MM, VOXEL_MM))
    np.testing.assert_allclose(matrix, whole, rtol=0, atol=1e-12)
    # list of disjoint masks == label image
    masks = [phantom.labels == k for k in range(1, 6)]
    np.testing.assert_array_equal(gtm_matrix(masks, PSF_FWHM_MM, VOXEL_MM, dtype=np.float64), matrix)
    condition = gtm_condition_number(matrix)
    assert 1.0 < condition < 100.0
    with caplog.at_level(logging.INFO, logger="tspo_bids.pvc.gtm"):
        gtm_correct(np.ones((5, 2)), matrix)
    assert f"{condition:.3g}" in caplog.text


def test_gtm_with_noise_within_four_standard_errors(phantom):
    rng = np.random.default_rng(11)
    voxel_sd = 0.2 * np.abs(phantom.blurred_series) + 0.02  # 20 % voxel COV plus a floor, kBq/mL
    noisy = phantom.blurred_series + rng.normal(size=voxel_sd.shape) * voxel_sd
    matrix = gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM)
    corrected = gtm_correct(regional_means(noisy, phantom.labels), matrix)
    # predicted standard error of the corrected values: G^-1 diag(var of regional means) G^-T
    labels = phantom.labels.ravel()
    counts = np.bincount(labels)[1:]
    mean_variance = np.stack([np.bincount(labels, weights=(voxel_sd[..., f] ** 2).ravel())[1:] / counts**2
                              for f in range(voxel_sd.shape[3])], axis=1)
    inverse = np.linalg.inv(matrix)
    standard_error = np.sqrt((inverse**2) @ mean_variance)
    assert np.all(np.abs(corrected - phantom.truth) < 4.0 * standard_error)
    # stated tolerance in relative terms for the target regions: within 0.1 (thalamus SE ~3 %)
    relative = np.abs(corrected / phantom.truth - 1)[TARGETS]
    assert relative.max() < 0.1


def test_forward_model_with_pet_voxelisation(phantom):
    def to_pet_and_back(image):
        """Blur, average into 4 mm PET voxels, resample back to the 2 mm grid (nearest)."""
        blurred = gaussian_psf_blur(image, PSF_FWHM_MM, VOXEL_MM)
        pet = blurred.reshape(24, 2, 24, 2, 24, 2).mean(axis=(1, 3, 5))
        return pet.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)

    measured = np.stack([to_pet_and_back(phantom.true_series[..., f]) for f in range(5)], axis=-1)
    observed = regional_means(measured, phantom.labels)
    with_model = gtm_correct(observed, gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM, to_pet_and_back,
                                                  dtype=np.float64))
    np.testing.assert_allclose(with_model, phantom.truth, rtol=1e-6)
    # ignoring the PET voxelisation leaves a cortex bias of several per cent
    blur_only = gtm_correct(observed, gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM, dtype=np.float64))
    assert np.all(np.abs(blur_only / phantom.truth - 1)[REGION_NAMES.index("cortex")] > 0.05)


def test_psf_misspecification_is_finite_and_monotone(phantom):
    observed = regional_means(phantom.blurred_series, phantom.labels)
    assumed_fwhm = np.arange(4.0, 6.01, 0.25)  # true PSF 5 mm, +-1 mm
    corrected = np.stack([gtm_correct(observed, gtm_matrix(phantom.labels, f, VOXEL_MM, dtype=np.float64))
                          for f in assumed_fwhm])
    assert np.all(np.isfinite(corrected))
    steps = np.diff(corrected, axis=0)
    # hot compact regions: more assumed blur -> more recovery; cold WM core and CSF: the reverse
    for name in ("thalamus", "cortex", "remaining"):
        assert np.all(steps[:, REGION_NAMES.index(name)] > 0), name
    for name in ("wm", "csf"):
        assert np.all(steps[:, REGION_NAMES.index(name)] < 0), name
    relative = corrected / phantom.truth - 1
    # measured on this phantom (frame means): cortex -10.6 % at 4 mm, +14.3 % at 6 mm; WM +2.3 % / -3.0 %
    cortex, wm = REGION_NAMES.index("cortex"), REGION_NAMES.index("wm")
    assert -0.13 < relative[0, cortex].mean() < -0.08 and 0.11 < relative[-1, cortex].mean() < 0.17
    assert 0.01 < relative[0, wm].mean() < 0.04 and -0.045 < relative[-1, wm].mean() < -0.015


def test_partition_first_wins_and_roi_means_map_back(phantom):
    x, y, z = phantom.coordinates_mm
    wm = phantom.masks["wm"]
    nawm = wm & (x > 4.0)  # an ROI inside WM with its own value
    masks = {"thalamus": phantom.masks["thalamus"], "nawm": nawm, "csf": phantom.masks["csf"],
             "cortex": phantom.masks["cortex"], "wm": wm, "remaining": phantom.masks["remaining"]}
    labels = partition_regions(list(masks.values()))
    assert np.all(labels[phantom.masks["thalamus"]] == 1)  # first wins inside WM
    assert np.all(labels[nawm & ~phantom.masks["thalamus"] & ~phantom.masks["csf"]] == 2)
    truth = np.array([phantom.truth[0], phantom.truth[3] * 1.3, phantom.truth[1], phantom.truth[2],
                      phantom.truth[3], phantom.truth[4]])
    series = synthetic_image(labels, truth)
    observed = regional_means(gaussian_psf_blur(series, PSF_FWHM_MM, VOXEL_MM), labels)
    corrected = gtm_correct(observed, gtm_matrix(labels, PSF_FWHM_MM, VOXEL_MM, dtype=np.float64))
    weights = roi_partition_weights([wm, nawm, phantom.masks["remaining"]], labels)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    expected = np.stack([series[wm].mean(axis=0), series[nawm].mean(axis=0),
                         series[phantom.masks["remaining"]].mean(axis=0)])
    np.testing.assert_allclose(weights @ corrected, expected, rtol=1e-6)


def test_invalid_inputs(phantom):
    masks = [phantom.masks["wm"], phantom.masks["remaining"]]  # overlapping
    with pytest.raises(ValueError, match="partition_regions"):
        gtm_matrix(masks, PSF_FWHM_MM, VOXEL_MM)
    labels = phantom.labels.copy()
    labels[labels == 2] = 1  # label 2 now empty
    with pytest.raises(InputError, match=r"--pvc: region label\(s\) \[2\] have no voxels"):
        gtm_matrix(labels, PSF_FWHM_MM, VOXEL_MM)
    for bad in (0.0, -2.0, 21.0, [5.0, 5.0]):
        with pytest.raises(InputError, match="--pvc-psf"):
            gtm_matrix(phantom.labels, bad, VOXEL_MM)
    with pytest.raises(ValueError, match="does not match"):
        gtm_correct(np.ones((4, 3)), np.eye(5))
    with pytest.raises(ValueError, match="non-finite"):
        gtm_correct(np.full((5, 1), np.nan), np.eye(5))


def test_singular_matrix_falls_back_to_least_squares(caplog):
    matrix = np.array([[0.5, 0.5], [0.5, 0.5]])
    with caplog.at_level(logging.WARNING, logger="tspo_bids.pvc.gtm"):
        corrected = gtm_correct(np.array([[2.0], [2.0]]), matrix)
    np.testing.assert_allclose(corrected, [[2.0], [2.0]])  # minimum-norm solution
    assert "unreliable" in caplog.text
