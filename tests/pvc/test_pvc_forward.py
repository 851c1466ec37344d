"""PET-grid measurement model: the fast GTM equals the generic one; GTM with it recovers truth."""

import numpy as np
import pytest
from pvc_phantom import PSF_FWHM_MM, REGION_NAMES, VOXEL_MM

from tspo_bids.errors import InputError
from tspo_bids.pvc import gtm_correct, gtm_matrix, rbv_correct, regional_means
from tspo_bids.pvc.forward import PetGridModel, gtm_matrix_pet_grid


def _model(phantom, sample_order=3, pet_shape=(27, 27, 27)):
    t1w_affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    t1w_affine[:3, 3] = -47.0
    pet_affine = np.diag([4.0, 4.0, 4.0, 1.0])
    pet_affine[:3, 3] = -52.0
    angle = 0.1  # rad, PET misaligned by a rotation about z and a shift
    t1w_to_pet = np.eye(4)
    t1w_to_pet[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    t1w_to_pet[:3, 3] = [1.3, -0.7, 2.1]
    return PetGridModel(PSF_FWHM_MM, phantom.labels.shape, t1w_affine, pet_shape, pet_affine, t1w_to_pet,
                        sample_order=sample_order)


@pytest.mark.parametrize("sample_order", [1, 3])
@pytest.mark.parametrize("pet_shape", [(27, 27, 27), (18, 27, 27)])  # second: the PET FOV cuts the head
def test_fast_pet_grid_gtm_equals_generic_forward(phantom, sample_order, pet_shape):
    model = _model(phantom, sample_order, pet_shape)
    generic = gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM, forward=lambda image: model(image), dtype=np.float64)
    fast = gtm_matrix_pet_grid(phantom.labels, model, dtype=np.float64)
    np.testing.assert_allclose(fast, generic, rtol=0, atol=1e-10)
    # gtm_matrix takes the fast path for a model that offers it
    np.testing.assert_array_equal(gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM, forward=model, dtype=np.float64),
                                  fast)


def test_pull_matrix_built_in_region_groups_is_the_same(phantom, monkeypatch):
    from tspo_bids.pvc import forward

    model = _model(phantom)
    whole = gtm_matrix_pet_grid(phantom.labels, model, dtype=np.float64)
    monkeypatch.setattr(forward, "_DENSE_LIMIT", 2 * 27**3)  # two regions per group
    monkeypatch.setattr(forward, "_VOXEL_BLOCK", 1000)  # and many voxel blocks
    np.testing.assert_allclose(gtm_matrix_pet_grid(phantom.labels, model, dtype=np.float64), whole,
                               rtol=0, atol=1e-12)


def test_gtm_with_pet_voxelisation_recovers_truth(phantom):
    model = _model(phantom)
    measured = np.stack([model(phantom.true_series[..., f]) for f in range(5)], axis=-1)
    observed = regional_means(measured, phantom.labels)
    corrected = gtm_correct(observed, gtm_matrix_pet_grid(phantom.labels, model, dtype=np.float64))
    np.testing.assert_allclose(corrected, phantom.truth, rtol=1e-6)
    # measured: the blur-only model leaves cortex 15-18 % low and thalamus 4-11 % low (9 % on average)
    blur_only = gtm_correct(observed, gtm_matrix(phantom.labels, PSF_FWHM_MM, VOXEL_MM, dtype=np.float64))
    relative = blur_only / phantom.truth - 1
    assert np.all(relative[REGION_NAMES.index("cortex")] < -0.1)
    assert np.all(relative[REGION_NAMES.index("thalamus")] < -0.03)
    assert relative[REGION_NAMES.index("thalamus")].mean() < -0.07
    # RBV through the same model restores the regional truth as well
    voxelwise = rbv_correct(measured, phantom.labels, PSF_FWHM_MM, VOXEL_MM, corrected, forward=model,
                            dtype=np.float64)
    np.testing.assert_allclose(regional_means(voxelwise, phantom.labels), phantom.truth, rtol=1e-6)


def test_model_steps_and_validation(phantom):
    model = _model(phantom, sample_order=1)
    assert model.t1w_voxel_size_mm == (VOXEL_MM,) * 3
    np.testing.assert_allclose(model.pet_voxel_in_t1w_voxel @ model.t1w_voxel_in_pet_voxel, np.eye(4), atol=1e-12)
    # a uniform PET image resamples to 1 wherever the T1w voxel is inside the PET field of view, 0 outside
    back = model.to_t1w_grid(np.ones(model.pet_shape))
    assert set(np.unique(np.round(back, 12))) == {0.0, 1.0}
    with pytest.raises(InputError, match="--pvc-psf"):
        PetGridModel(0.0, (4, 4, 4), np.eye(4), (4, 4, 4), np.eye(4))
    with pytest.raises(ValueError, match="sample_order"):
        PetGridModel(5.0, (4, 4, 4), np.eye(4), (4, 4, 4), np.eye(4), sample_order=2)
    with pytest.raises(ValueError, match="4x4"):
        PetGridModel(5.0, (4, 4, 4), np.eye(3), (4, 4, 4), np.eye(4))
    with pytest.raises(ValueError, match="differs"):
        gtm_matrix(phantom.labels, PSF_FWHM_MM + 1.0, VOXEL_MM, forward=model)
    with pytest.raises(ValueError, match="T1w grid"):
        gtm_matrix_pet_grid(np.ones((5, 5, 5), int), model)
